"""ER-Classifier training (Li et al., Algorithm 1) and its variants, in ART's ``Trainer`` form on the shared loop."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rce_art._tensors import frozen_buffers
from rce_art._validation import check_nonnegative
from rce_art.distributed import average_gradients, rank_seed
from rce_art.losses.er import critic_objective, encoder_prior_objective, trades_loss
from rce_art.models.er import Critic
from rce_art.training.pgd import linf_pgd
from rce_art.training.trainers import PreprocessedFeatures, TorchTrainer

__all__ = ["ERTrainer"]

REGULARIZERS = ("critic", "vae", None)


class ERTrainer(TorchTrainer):
    """ER-Classifier: adversarial (PGD min-max) training of an encoder + classifier with a WGAN-regularised code.

    Per batch (Algorithm 1): craft l_inf PGD examples on ``CE(C(Q(x)), y)`` (random start, projection, clip);
    ``n_critic`` critic steps ascending ``(lambda/n) sum [D(z~) - D(Q(x_adv))]`` with weight clipping to
    ``[-critic_clip, critic_clip]``; one step of the loop's optimiser (SGD, ours) descending CE on the
    adversarial batch (encoder + classifier); one Adam step of the encoder ascending ``(lambda/n) sum
    D(Q(x_adv))``. Variants by parameter, as in the paper's experiments:

    ======================  =================================================================
    ER-Classifier           ``regularizer="critic", adversarial="pgd"`` (default)
    ER-Classifier-          ``adversarial=None`` (no min-max: clean batches)
    ER-TRADES               ``loss="trades"`` (TRADES loss, PGD on its KL term, in line 8)
    E-CLA (ablation)        ``regularizer=None, adversarial=None``
    VAE-CLA (ablation)      ``regularizer="vae", adversarial=None`` on a variational
                            [`ERClassifier`][rce_art.models.ERClassifier] (KL to ``N(0, I)`` in place of the critic)
    Madry PGD training      ``regularizer=None, adversarial="pgd"`` (for speed comparisons; the scripts
                            use ART's ``AdversarialTrainerMadryPGD`` as the baseline)
    ======================  =================================================================

    With ``regularizer=None`` and ``adversarial=None`` this is CE training, identical to
    [`CETrainer`][rce_art.CETrainer] with the same seed and loop settings.

    Args:
        classifier: ART ``PyTorchClassifier`` around an [`ERClassifier`][rce_art.models.ERClassifier], or the module.
        lam: Regularisation weight ``lambda`` (paper: not given; ours 1).
        regularizer: ``"critic"`` (WGAN, ER-Classifier), ``"vae"`` (VAE-CLA) or ``None`` (E-CLA, Madry).
        adversarial: ``"pgd"`` (min-max) or ``None`` (clean batches).
        loss: ``"ce"`` or ``"trades"``.
        trades_beta: TRADES' ``beta`` (ours: TRADES' default 6).
        vae_weight: Weight of the VAE's KL term (ours: 1).
        critic_hidden: Hidden width of the critic MLP (ours: 512).
        critic_clip: WGAN weight-clipping constant ``c`` (ours: WGAN's 0.01).
        n_critic: Critic steps per batch (Algorithm 1: 1).
        critic_lr: Adam learning rate of the critic (ours: 1e-4, betas (0.5, 0.999)).
        encoder_lr: Adam learning rate of the encoder step of line 9 (ours: 3e-5; Adam's step does not scale with
            lambda, so this rate, not lambda, sets the strength of the literal algorithm). Chosen by
            ``examples/er_encoder_sweep.py`` (digits, 5 epochs, no min-max, 2 seeds): the rate with the codes
            closest to the prior (sliced W1 0.30 vs 0.51 without the critic) whose clean accuracy stays within 2
            points of E-CLA's (0.973 vs 0.992); 1e-4 gives 0.817 / 0.31, 1e-3 collapses (0.17).
        encoder_step: ``"adam"`` (Algorithm 1 as written: a separate one-step Adam on the encoder after line 8) or
            ``"joint"`` (ours: ``-lambda * mean D(Q(x_adv))`` added to line 8's loss, the relaxed objective of
            eq. (1) descended by the loop's optimiser, where lambda sets the strength).
        pgd_eps: Training PGD budget in pixel units (ours: Madry's MNIST 0.3 of a unit range).
        pgd_alpha: PGD step size.
        pgd_steps: PGD steps.
        random_start: PGD from a uniform point of the eps-ball.
        **kwargs: Loop settings of [`TorchTrainer`][rce_art.TorchTrainer] (epochs, lr, batch_size, schedule, seed, ...).

    Attributes:
        critic_ (Critic): The critic after ``fit`` (``regularizer="critic"``).
        critic_values_ (list[float]): Critic objective per batch (lambda times the Wasserstein estimate between
            the codes and the prior: it should shrink as the codes approach the prior).

    References:
        Li, Min, Yu, Hsieh, Lee, Kruus. Defending Against Adversarial Examples by Regularized Deep Embedding,
        Algorithm 1 and Section 4.
    """

    def __init__(self, classifier: Any, *, lam: float = 1.0, regularizer: str | None = "critic",
                 adversarial: str | None = "pgd", loss: str = "ce", trades_beta: float = 6.0, vae_weight: float = 1.0,
                 critic_hidden: int = 512, critic_clip: float = 0.01, n_critic: int = 1, critic_lr: float = 1e-4,
                 encoder_lr: float = 3e-5, encoder_step: str = "adam", pgd_eps: float = 0.3, pgd_alpha: float = 0.01, pgd_steps: int = 40,
                 random_start: bool = True, **kwargs: Any) -> None:
        super().__init__(classifier, **kwargs)
        model = self._view.model
        if not (hasattr(model, "encode") and hasattr(model, "k")):
            raise TypeError(f"ERTrainer trains an rce_art.models.ERClassifier (encoder + head), got "
                            f"{type(model).__name__}; build one with ERClassifier.small(...)")
        if regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer must be one of {REGULARIZERS}, got {regularizer!r}")
        if regularizer == "vae" and not model.variational:
            raise ValueError("regularizer='vae' needs a variational ERClassifier (variational=True)")
        if adversarial not in ("pgd", None) or loss not in ("ce", "trades"):
            raise ValueError(f"adversarial must be 'pgd' or None and loss 'ce' or 'trades', got {adversarial!r}, "
                             f"{loss!r}")
        if loss == "trades" and adversarial is None:
            raise ValueError("loss='trades' needs adversarial='pgd' (TRADES crafts its own adversarial batch)")
        for name, v in (("lam", lam), ("critic_clip", critic_clip), ("pgd_eps", pgd_eps), ("pgd_alpha", pgd_alpha),
                        ("trades_beta", trades_beta), ("vae_weight", vae_weight)):
            check_nonnegative(v, name)
        if encoder_step not in ("adam", "joint"):
            raise ValueError(f"encoder_step must be 'adam' or 'joint', got {encoder_step!r}")
        if n_critic < 1 or pgd_steps < 0:
            raise ValueError(f"n_critic must be >= 1 and pgd_steps >= 0, got {n_critic}, {pgd_steps}")
        self.lam, self.regularizer, self.adversarial, self.loss_name = float(lam), regularizer, adversarial, loss
        self.trades_beta, self.vae_weight = float(trades_beta), float(vae_weight)
        self.critic_hidden, self.critic_clip, self.n_critic = critic_hidden, float(critic_clip), int(n_critic)
        self.critic_lr, self.encoder_lr, self.encoder_step = critic_lr, encoder_lr, encoder_step
        self.pgd_eps, self.pgd_alpha, self.pgd_steps, self.random_start = pgd_eps, pgd_alpha, pgd_steps, random_start

    @property
    def uses_critic(self) -> bool:
        return self.regularizer == "critic" and self.lam > 0

    def settings(self) -> dict[str, Any]:
        """Every ER setting, as printed next to results."""
        return {k: getattr(self, k) for k in ("lam", "regularizer", "adversarial", "loss_name", "trades_beta",
                                              "vae_weight", "critic_hidden", "critic_clip", "n_critic", "critic_lr",
                                              "encoder_lr", "encoder_step", "pgd_eps", "pgd_alpha", "pgd_steps",
                                              "random_start")}

    def _loop_module(self) -> nn.Module:
        return PreprocessedFeatures(self._view.model, self._view.preprocess)

    def _encode(self, x: Tensor) -> Tensor:
        return self._view.model.encode(self._view.preprocess(x))

    def _batch_loss(self, data: Any) -> Any:
        model, dev = self._view.model, self._view.device
        pgd_gen = torch.Generator().manual_seed(rank_seed(self.seed + 2))
        prior_gen = torch.Generator().manual_seed(rank_seed(self.seed + 3))
        raw = self.training_module()
        if self.uses_critic:
            with torch.random.fork_rng(devices=[]):  # the critic's initial weights, global RNG untouched
                torch.manual_seed(self.seed)
                self.critic_ = Critic(model.k, self.critic_hidden).to(dev)
            self.critic_.clip_(self.critic_clip)  # WGAN: the critic lives in the clipped box from its first step
            self._critic_opt = torch.optim.Adam(self.critic_.parameters(), lr=self.critic_lr, betas=(0.5, 0.999))
            if self.encoder_step == "adam":
                self._encoder_opt = torch.optim.Adam(model.encoder.parameters(), lr=self.encoder_lr,
                                                     betas=(0.5, 0.999))
        self.critic_values_: list[float] = []

        def batch_loss(net: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
            if self.adversarial == "pgd":
                x_adv = linf_pgd(raw, xb, yb, self.pgd_eps, self.pgd_alpha, self.pgd_steps, self.clip_values,
                                 random_start=self.random_start, objective="kl" if self.loss_name == "trades" else "ce",
                                 generator=pgd_gen)
            else:
                x_adv = xb
            if self.loss_name == "trades":  # two passes, as the TRADES reference: each batch's own BN statistics
                logits_nat, _ = net(xb)
                logits, z = net(x_adv)
                loss = trades_loss(logits_nat, logits, yb, self.trades_beta)
            else:
                logits, z = net(x_adv)
                loss = F.cross_entropy(logits, yb)
            if self.regularizer == "vae":
                loss = loss + self.vae_weight * model.last_kl.mean()
            if self.uses_critic:
                self._critic_steps(z.detach(), prior_gen)
                self._last_adv = x_adv
                if self.encoder_step == "joint":  # ours: line 9's term in line 8's loss (eq. 1, relaxed)
                    loss = loss - encoder_prior_objective(self.critic_(z), self.lam)
            return loss

        return batch_loss

    def _critic_steps(self, z: Tensor, prior_gen: torch.Generator) -> None:
        """Algorithm 1, line 7: ascend the critic objective, then clip the critic's weights."""
        for _ in range(self.n_critic):
            prior = torch.randn(z.shape, generator=prior_gen).to(z)
            obj = critic_objective(self.critic_(prior), self.critic_(z), self.lam)
            self._critic_opt.zero_grad(set_to_none=True)
            (-obj).backward()
            average_gradients(self.critic_.parameters())
            self._critic_opt.step()
            self.critic_.clip_(self.critic_clip)
        self.critic_values_.append(float(obj.detach()))

    def _post_step(self) -> Any:
        if not self.uses_critic or self.encoder_step == "joint":
            return None

        def encoder_step() -> None:
            """Algorithm 1, line 9: one Adam step of the encoder ascending ``(lambda/n) sum D(Q(x_adv))``.

            The codes come from the encoder in train mode, as the critic saw them in line 7 (BatchNorm on batch
            statistics); the BatchNorm running statistics are restored after this second pass over the batch."""
            model = self._view.model
            with frozen_buffers(model):  # restored after the backward pass, which reads them
                obj = encoder_prior_objective(self.critic_(self._encode(self._last_adv)), self.lam)
                self._encoder_opt.zero_grad(set_to_none=True)
                (-obj).backward()
            average_gradients(model.encoder.parameters())
            self._encoder_opt.step()
            self.critic_.zero_grad(set_to_none=True)

        return encoder_step

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Classification loss of line 8 on one batch's logits (CE)."""
        return F.cross_entropy(logits, y)
