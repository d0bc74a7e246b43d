"""ER-Classifier's objectives (Li et al., Algorithm 1) and the TRADES loss used by ER-TRADES.

The critic ``D`` estimates the 1-Wasserstein distance between the codes ``Q(x)`` and the prior ``N(0, I)`` in
Kantorovich-Rubinstein dual form (WGAN): the critic *ascends* [`critic_objective`][], the encoder *ascends*
[`encoder_prior_objective`][] (pulling its codes toward where the critic scores the prior).

References:
    Li, Min, Yu, Hsieh, Lee, Kruus. Defending Against Adversarial Examples by Regularized Deep Embedding
    (ER-Classifier), Section 3, eq. (1) and Algorithm 1; Zhang et al., TRADES (ICML 2019), eq. (5).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from rce_art._validation import check_logits_and_labels, check_nonnegative

__all__ = ["critic_objective", "encoder_prior_objective", "trades_loss"]


def _check_scores(*scores: Tensor) -> None:
    for s in scores:
        if s.ndim != 1 or s.shape[0] == 0:
            raise ValueError(f"critic scores must have shape (n,) with n >= 1, got {tuple(s.shape)}")


def critic_objective(d_prior: Tensor, d_code: Tensor, weight: float = 1.0) -> Tensor:
    """Critic objective to *ascend*: ``(lambda/n) sum_i [D(z~_i) - D(Q(x_i))]`` (Algorithm 1, line 7).

    Args:
        d_prior: Critic scores ``(n,)`` of prior samples ``z~_i ~ N(0, I)``.
        d_code: Critic scores ``(n,)`` of the codes ``Q(x_i)`` (of the adversarial batch).
        weight: ``lambda >= 0``.

    Returns:
        Scalar; the critic's optimiser minimises its negative.

    Raises:
        ValueError: On empty or non-1-D scores or a negative weight.
    """
    _check_scores(d_prior, d_code)
    return check_nonnegative(weight, "weight") * (d_prior.mean() - d_code.mean())


def encoder_prior_objective(d_code: Tensor, weight: float = 1.0) -> Tensor:
    """Encoder objective to *ascend*: ``(lambda/n) sum_i D(Q(x_i))`` (Algorithm 1, line 9, one Adam step).

    Args:
        d_code: Critic scores ``(n,)`` of the codes.
        weight: ``lambda >= 0``.

    Returns:
        Scalar.
    """
    _check_scores(d_code)
    return check_nonnegative(weight, "weight") * d_code.mean()


def trades_loss(logits_clean: Tensor, logits_adv: Tensor, y: Tensor, beta: float = 6.0) -> Tensor:
    """TRADES: ``CE(f(x), y) + beta * KL(f(x) || f(x_adv))``, batch means (Zhang et al. 2019, eq. 5).

    Args:
        logits_clean: Logits ``(N, L)`` of the clean batch.
        logits_adv: Logits ``(N, L)`` of its adversarial counterpart.
        y: Labels ``(N,)``.
        beta: Robustness weight (TRADES' default 6; the ER paper does not give it).

    Returns:
        Scalar.

    Raises:
        ValueError: On mismatched shapes, bad labels or a negative ``beta``.
    """
    check_logits_and_labels(logits_clean, y)
    if logits_adv.shape != logits_clean.shape:
        raise ValueError(f"logits_adv must have shape {tuple(logits_clean.shape)}, got {tuple(logits_adv.shape)}")
    b = check_nonnegative(beta, "beta")
    kl = F.kl_div(F.log_softmax(logits_adv, 1), F.log_softmax(logits_clean, 1), reduction="batchmean", log_target=True)
    return F.cross_entropy(logits_clean, y.long()) + b * kl
