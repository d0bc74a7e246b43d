"""Auto-PGD (APGD-CE, APGD-DLR, APGD-T): tensor-native, one forward and one input-only backward per iteration.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks",
ICML 2020: Algorithm 1 (step size halved at checkpoints when the loss oscillates or stalls, momentum 0.75), the DLR
loss (eq. 5) and its targeted form (eq. 6). Written from the paper; AutoAttack's code was read for the checkpoint
schedule and the random start.

On a classifier + detector system the logits are folded per row ([`fold_rows`][rce_art.attacks.fold_rows]),
so one call attacks a batch of mixed classes and "success" is misclassified AND not flagged. Inputs leave the batch
as they break: every iteration is one batched forward and one backward over the inputs still unbroken, weights
untouched (only the input gradient is computed), no numpy in the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rce_art._signature import SignatureParams
from rce_art._tensors import eval_mode
from rce_art._validation import check_integer, check_positive, check_real
from rce_art.attacks._target import AttackTarget, attack_target, batch_tensors
from rce_art.attacks.detector_pgd import project

__all__ = ["APGD", "BatchAttackResult", "dlr_loss", "targeted_dlr_loss"]

LOSSES = ("ce", "dlr", "dlr-targeted")


@dataclass
class BatchAttackResult:
    """Outcome per input of a batch attack ([`APGD`][], [`Square`][rce_art.attacks.Square]).

    Attributes:
        x_adv: ``(N, ...)``: the first example found that succeeds; for an input where none did, the iterate with the
            best loss (the closest to succeeding).
        success: ``(N,)`` bool: ``argmax != label`` at ``x_adv`` (on a system: misclassified AND not flagged).
    """

    x_adv: Tensor
    success: Tensor


def dlr_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Difference-of-logits ratio, ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)`` per row (Croce & Hein 2020, eq. 5).

    Scale-invariant in the logits; maximised by the attack. Needs at least 3 classes.

    Args:
        logits: ``(N, L)``.
        labels: ``(N,)`` true labels.

    Returns:
        ``(N,)`` losses.
    """
    top = logits.topk(3, dim=1).values
    own = logits.gather(1, labels[:, None])[:, 0]
    other = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return -(own - other) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr_loss(logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """Targeted DLR, ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` per row (Croce & Hein 2020, eq. 6).

    Args:
        logits: ``(N, L)``, ``L >= 4``.
        labels: ``(N,)`` true labels.
        targets: ``(N,)`` target classes.

    Returns:
        ``(N,)`` losses (maximised by the attack).
    """
    top = logits.topk(4, dim=1).values
    own = logits.gather(1, labels[:, None])[:, 0]
    tgt = logits.gather(1, targets[:, None])[:, 0]
    return -(own - tgt) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def checkpoints(steps: int) -> list[int]:
    """Iterations (0-based) after which APGD checks its step size: ``p_0 = 0``, ``p_1 = 0.22``,
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` as fractions of ``steps`` (Croce & Hein 2020, Sec. 3.2)."""
    first, shrink, least = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, at, gap = [], 0, first
    while at + gap <= steps:
        at += gap
        out.append(at - 1)
        gap = max(gap - shrink, least)
    return out


class APGD(SignatureParams):
    """Auto-PGD on a classifier + detector system (or a plain classifier), untargeted or over the top target classes.

    ``loss="ce"``: APGD-CE; ``"dlr"``: APGD-DLR; ``"dlr-targeted"``: APGD-T, the targeted DLR loss toward each of the
    ``n_targets`` classes ranked highest at the clean input (after the true class), one after another on the inputs
    still unbroken, with AutoAttack's success test (any wrong class, not only the target).

    Args:
        eps: Budget in pixel units.
        norm: ``"linf"`` or ``"l2"``.
        loss: ``"ce"``, ``"dlr"`` or ``"dlr-targeted"``.
        steps: Iterations per run (per target for APGD-T); each is one forward and one backward.
        n_targets: Target classes of APGD-T (AutoAttack's standard: 9; ours: 3).
        rho: Fraction of loss increases between checkpoints below which the step size is halved (0.75).
        momentum: Weight of the new step against the previous one (0.75).
        seed: Seed of the random start (a local generator; the global state is untouched).

    References:
        F. Croce, M. Hein. Reliable evaluation of adversarial robustness with an ensemble of diverse
        parameter-free attacks. ICML 2020, Algorithm 1 and eqs. 5-6.
    """

    def __init__(self, eps: float, norm: str = "linf", loss: str = "ce", steps: int = 100, n_targets: int = 9,
                 rho: float = 0.75, momentum: float = 0.75, seed: int = 0) -> None:
        check_positive(eps, "eps")
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        check_integer(steps, "steps", 1)
        check_integer(n_targets, "n_targets", 1)
        check_real(rho, "rho", low=0.0, high=1.0)
        check_real(momentum, "momentum", low=0.0, high=1.0)
        self.eps, self.norm, self.loss, self.steps, self.n_targets = float(eps), norm, loss, int(steps), int(n_targets)
        self.rho, self.momentum, self.seed = float(rho), float(momentum), int(seed)

    def run(self, target: object, x: Tensor, y: Tensor, clip_values: tuple[float, float] | None = None
            ) -> BatchAttackResult:
        """Attack a batch.

        Args:
            target: A [`DetectorAsClass`][rce_art.attacks.DetectorAsClass], a fitted detector (at its
                ``threshold_``) or a classifier ``nn.Module`` (logits on raw inputs).
            x: Clean inputs ``(N, ...)`` within the pixel range.
            y: True labels ``(N,)``.
            clip_values: Pixel range of a plain classifier module.

        Returns:
            [`BatchAttackResult`][].

        Raises:
            ValueError: On bad labels, or APGD-T with fewer than 4 classes.
        """
        t = attack_target(target, clip_values)
        x, y = batch_tensors(t, x, y)
        gen = torch.Generator().manual_seed(self.seed)
        with eval_mode(t.module):
            if self.loss != "dlr-targeted":
                return BatchAttackResult(*self._single(t, x, y, None, gen))
            out, success = x.clone(), torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            with torch.no_grad():
                ranked = t.logits(x, y).argsort(1, descending=True)
            n_classes = ranked.shape[1]
            if n_classes < 4:
                raise ValueError(f"APGD-T's targeted DLR loss needs at least 4 classes, the model has {n_classes}; "
                                 "use loss='dlr' or 'ce'")
            others = ranked[ranked != y[:, None]].view(x.shape[0], n_classes - 1)
            for k in range(min(self.n_targets, n_classes - 1)):
                todo = (~success).nonzero()[:, 0]
                if todo.numel() == 0:
                    break
                adv, ok = self._single(t, x[todo], y[todo], others[todo, k], gen)
                keep = ok | (k == 0)  # a success, or the first target's best attempt
                out[todo[keep]] = adv[keep]
                success[todo[ok]] = True
        return BatchAttackResult(out, success)

    # ------------------------------------------------------------------ pieces
    def _objective(self, logits: Tensor, y: Tensor, targets: Tensor | None) -> Tensor:
        if self.loss == "ce":
            return F.cross_entropy(logits, y, reduction="none")
        if self.loss == "dlr":
            return dlr_loss(logits, y)
        assert targets is not None
        return targeted_dlr_loss(logits, y, targets)

    def _evaluate(self, t: AttackTarget, x: Tensor, y: Tensor, targets: Tensor | None
                  ) -> tuple[Tensor, Tensor, Tensor]:
        """Loss, its input gradient and success at ``x``: one forward, one input-only backward."""
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = t.logits(xr, y)
            loss = self._objective(logits, y, targets)
            grad = torch.autograd.grad(loss.sum(), xr)[0]
        return loss.detach(), grad.detach(), logits.detach().argmax(1) != y

    def _direction(self, g: Tensor) -> Tensor:
        if self.norm == "linf":
            return g.sign()
        return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (g.ndim - 1)))

    def _start(self, x: Tensor, gen: torch.Generator, clip: tuple[float, float]) -> Tensor:
        if self.norm == "linf":
            u = torch.rand(x.shape, generator=gen).to(x.device) * 2 - 1
            u = u / u.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
        else:
            u = torch.randn(x.shape, generator=gen).to(x.device)
            u = u / u.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
        return (x + self.eps * u).clamp(clip[0], clip[1])

    def _single(self, t: AttackTarget, x: Tensor, y: Tensor, targets: Tensor | None, gen: torch.Generator
                ) -> tuple[Tensor, Tensor]:
        """One APGD run (Algorithm 1) on a batch; rows leave the batch when they succeed."""
        clip, n = t.clip, x.shape[0]
        out, success = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
        xa = self._start(x, gen, clip)
        loss, grad, ok = self._evaluate(t, xa, y, targets)
        live = torch.arange(n, device=x.device)  # rows of the batch still attacked
        out[:] = xa
        # "at": the point each row's ``ok`` was evaluated at (the checkpoint below may move "xa" to the best-loss
        # point after the evaluation: a success is the evaluated point, never that one)
        state = {"x": x, "y": y, "xa": xa, "at": xa, "prev": xa.clone(), "grad": grad, "loss": loss, "best": loss.clone(),
                 "x_best": xa.clone(), "g_best": grad.clone(), "step": torch.full((n,), 2 * self.eps, device=x.device),
                 "ups": torch.zeros(n, device=x.device), "best_check": loss.clone(),
                 "reduced": torch.ones(n, dtype=torch.bool, device=x.device)}
        if targets is not None:
            state["tg"] = targets
        checks, last_check = set(checkpoints(self.steps)), -1
        for i in range(self.steps):
            # rows that succeeded leave the batch; their example is kept
            if ok.any():
                out[live[ok]], success[live[ok]] = state["at"][ok], True
                keep = ~ok
                live = live[keep]
                state = {k: v[keep] for k, v in state.items()}
                if live.numel() == 0:
                    break
            s = state
            shape = (-1, *([1] * (x.ndim - 1)))
            a = self.momentum if i > 0 else 1.0
            z = project(s["xa"] + s["step"].view(shape) * self._direction(s["grad"]), s["x"], self.eps, self.norm, clip)
            new = project(s["xa"] + a * (z - s["xa"]) + (1 - a) * (s["xa"] - s["prev"]), s["x"], self.eps, self.norm, clip)
            s["prev"], s["xa"] = s["xa"], new
            loss, grad, ok = self._evaluate(t, new, s["y"], s.get("tg"))
            s["at"] = new.clone()  # "xa" is reset in place at a checkpoint
            s["ups"] += (loss > s["loss"]).float()
            s["loss"], s["grad"] = loss, grad
            better = loss > s["best"]
            s["best"] = torch.where(better, loss, s["best"])
            s["x_best"][better], s["g_best"][better] = new[better], grad[better]
            if i in checks:
                # Algorithm 1's two conditions: too few increases since the last checkpoint, or the step size was not
                # reduced at the last one and the best loss has not improved since
                window = i - last_check
                halve = (s["ups"] <= self.rho * window) | (~s["reduced"] & (s["best_check"] >= s["best"]))
                s["reduced"], s["best_check"] = halve, s["best"].clone()
                s["step"] = torch.where(halve, s["step"] / 2, s["step"])
                s["xa"][halve], s["grad"][halve] = s["x_best"][halve], s["g_best"][halve]
                s["ups"] = torch.zeros_like(s["ups"])
                last_check = i
        if live.numel():  # the last iterate where it succeeds, else the best-loss iterate
            shape = (-1, *([1] * (x.ndim - 1)))
            out[live] = torch.where(ok.view(shape), state["at"], state["x_best"])
            success[live] = ok
        return out, success

