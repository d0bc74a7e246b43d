"""Regularised cross-entropies of Lemesle & Vernade (2021): label smoothing toward RCE, logit
squeezing and output variance minimisation (OVM), plus standard (Szegedy) label smoothing beside them.

Each objective is one short function of the raw logits ``Z`` and integer labels ``y``; module forms
are in [`rce_art.losses.composed`][rce_art.losses.composed].

References:
    Y. Lemesle, C. Vernade. From investigating detection of adversarial examples to achieving better
    adversarial robustness (report), Sections 3.1-3.2 and eq. (3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rce_art._tensors import reduce_loss
from rce_art._validation import check_logits, check_logits_and_labels, check_nonnegative, check_reduction
from rce_art.losses.rce import reverse_cross_entropy

__all__ = [
    "label_smoothing_cross_entropy",
    "logit_squeezing",
    "output_variance",
    "output_variance_loss",
    "rce_smoothing_loss",
]

def _row_l2(v: Tensor) -> Tensor:
    """Row-wise L2 norm without overflow for huge entries and with a zero (not NaN) gradient at 0."""
    scale = v.detach().abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
    return scale.squeeze(1) * torch.linalg.vector_norm(v / scale, dim=1)


def rce_smoothing_loss(logits: Tensor, y: Tensor, weight: float = 1.0, reduction: str = "mean") -> Tensor:
    """Label smoothing toward RCE: ``J = CE(x, y) - weight * R_y^T log F(x)`` (report, Section 3.1).

    This is what Lemesle & Vernade (after Pang et al.) call "label smoothing"; it is **not** Szegedy's
    mixing of the one-hot target with the uniform distribution (torch's ``label_smoothing=``, here
    [`label_smoothing_cross_entropy`][]). ``weight = 0`` is CE exactly; as ``weight`` grows the
    objective divided by ``weight`` tends to [`reverse_cross_entropy`][rce_art.losses.reverse_cross_entropy].

    The objective equals ``(1 + weight)`` times CE against the soft target ``(onehot(y) + weight * R_y) /
    (1 + weight)``, so its minimiser puts ``1 / (1 + weight)`` on the true class and ``weight / ((1 + weight)
    (L - 1))`` on each other class. **Predictions flip at** ``weight = L - 1``: below it the true class is
    the most probable (ordinary predictions), above it the least probable (a reverse classifier, as RCE:
    train it with ``ObjectiveTrainer(..., reverse=True)``).

    Args:
        logits: Raw logits ``Z``, shape ``(N, L)``, floating, finite.
        y: Integer labels in ``[0, L)``, shape ``(N,)``.
        weight: ``lambda >= 0`` (the grid's ``lambda_1``).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        Scalar, or ``(N,)`` with ``reduction="none"``.

    Raises:
        ValueError: On bad logits or labels, a negative weight or an unknown reduction.
        TypeError: If ``logits`` is not floating or ``y`` not integer.
    """
    check_logits_and_labels(logits, y)
    w = check_nonnegative(weight, "weight")
    check_reduction(reduction)
    if not w:
        return F.cross_entropy(logits, y.long(), reduction=reduction)
    loss = F.cross_entropy(logits, y.long(), reduction="none") + w * reverse_cross_entropy(logits, y, "none")
    return reduce_loss(loss, reduction)


def label_smoothing_cross_entropy(logits: Tensor, y: Tensor, epsilon: float = 0.1, reduction: str = "mean") -> Tensor:
    """Standard (Szegedy et al. 2016) label smoothing: CE against ``(1 - eps) onehot(y) + eps / L``.

    Offered beside [`rce_smoothing_loss`][] for comparison; the same as torch's
    ``F.cross_entropy(..., label_smoothing=epsilon)``, with this package's input checks.

    Args:
        logits: Raw logits ``(N, L)``.
        y: Integer labels ``(N,)``.
        epsilon: Smoothing in ``[0, 1]``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        Scalar, or ``(N,)`` with ``reduction="none"``.

    Raises:
        ValueError: On bad logits or labels, ``epsilon`` outside ``[0, 1]`` or an unknown reduction.
    """
    check_logits_and_labels(logits, y)
    if not 0.0 <= float(epsilon) <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    check_reduction(reduction)
    return F.cross_entropy(logits, y.long(), label_smoothing=float(epsilon), reduction=reduction)


def logit_squeezing(logits: Tensor, squared: bool = False, reduction: str = "mean") -> Tensor:
    """Logit squeezing penalty ``||Z(x)||_2`` (report eq. 3, unsquared as written; Kannan et al. 2018).

    Args:
        logits: Raw logits ``(N, L)``, floating, finite.
        squared: Penalise ``||Z(x)||_2^2`` instead (Kannan et al.'s form).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        Scalar, or ``(N,)`` with ``reduction="none"``. The gradient at ``Z = 0`` is 0, never NaN.

    Raises:
        ValueError: On a wrong shape, an empty batch or non-finite logits.
    """
    check_logits(logits)
    return reduce_loss(logits.pow(2).sum(dim=1) if squared else _row_l2(logits), reduction)


def output_variance(logits: Tensor, y: Tensor) -> Tensor:
    """OVM regulariser ``(1/|X|) sum_i sum_{x in X_i} ||log F(x) - mean_{x' in X_i} log F(x')||_2`` (Section 3.2).

    ``X_i`` are the batch's examples of class ``i``; the class mean is taken over the batch and carries
    gradient; a class with a single example contributes exactly 0; the norm is unsquared.

    Args:
        logits: Raw logits ``(N, L)`` of the batch, floating, finite.
        y: Integer labels ``(N,)``.

    Returns:
        Scalar tensor ``>= 0``.

    Raises:
        ValueError: On bad logits or labels.
    """
    check_logits_and_labels(logits, y)
    log_p = F.log_softmax(logits, dim=1)
    yl = y.long()
    counts = torch.bincount(yl, minlength=logits.shape[1]).to(log_p.dtype)
    sums = log_p.new_zeros((logits.shape[1], logits.shape[1])).index_add_(0, yl, log_p)
    means = sums / counts.clamp_min(1).unsqueeze(1)
    return _row_l2(log_p - means[yl]).sum() / logits.shape[0]


def output_variance_loss(logits: Tensor, y: Tensor, weight: float = 1.0) -> Tensor:
    """Output variance minimisation: ``OVM(X, Y) = CE(F(X), Y) + weight * output_variance`` (Section 3.2).

    Args:
        logits: Raw logits ``(N, L)`` of one batch.
        y: Integer labels ``(N,)``.
        weight: ``lambda >= 0`` (1 in the report).

    Returns:
        Scalar tensor (batch-mean CE plus the batch-level regulariser).

    Raises:
        ValueError: On bad logits or labels or a negative weight.
    """
    check_logits_and_labels(logits, y)
    w = check_nonnegative(weight, "weight")
    ce = F.cross_entropy(logits, y.long())
    return ce + w * output_variance(logits, y) if w else ce
