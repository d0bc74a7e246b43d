"""Reverse cross-entropy (RCE), Pang et al. (NeurIPS 2018), Section 3.2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rce_art._tensors import reduce_loss
from rce_art._validation import check_logits_and_labels, check_reduction

__all__ = ["ReverseCrossEntropyLoss", "reverse_cross_entropy", "reverse_labels"]


def reverse_labels(y: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Reverse label vectors ``R_y``: zero at the true class, ``1/(L-1)`` elsewhere.

    Args:
        y: Integer class labels, shape ``(N,)``.
        num_classes: Number of classes ``L`` (at least 2).
        dtype: Floating dtype of the result.

    Returns:
        Tensor of shape ``(N, L)`` whose rows sum to one.
    """
    if num_classes < 2:
        raise ValueError(f"reverse labels need at least 2 classes, got num_classes={num_classes}")
    r = torch.full((y.shape[0], num_classes), 1.0 / (num_classes - 1), dtype=dtype, device=y.device)
    return r.scatter_(1, y.long().unsqueeze(1), 0.0)


def reverse_cross_entropy(logits: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Reverse cross-entropy ``L_RCE(x, y) = -R_y^T log softmax(Z(x))`` (paper eq. 4).

    **Reverse-logits convention.** ``logits`` are the raw outputs ``Z`` of the network
    being *trained*. Minimising RCE makes that network a *reverse* classifier: it puts
    the lowest probability on the true class and a uniform distribution on the others.
    At inference the logits are negated, ``F_R(x) = softmax(-Z(x))`` (wrap the trained
    network in [`rce_art.models.ReverseLogits`][rce_art.models.ReverseLogits]), which gives ordinary predictions.
    Do not pass already-reversed logits to this loss.

    Args:
        logits: Raw logits ``Z``, shape ``(N, L)``, floating point, finite.
        y: True class labels in ``[0, L)``, shape ``(N,)``, integer dtype.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``, as in torch losses.

    Returns:
        Scalar tensor, or shape ``(N,)`` when ``reduction="none"``.

    Raises:
        ValueError: On a wrong shape, an empty batch, fewer than 2 classes, labels out of
            range, non-finite logits or an unknown reduction.
        TypeError: If ``logits`` is not floating point or ``y`` not integer.

    References:
        T. Pang, C. Du, Y. Dong, J. Zhu. Towards Robust Detection of Adversarial
        Examples. NeurIPS 2018, eq. (4) and "Reverse logits" in Section 3.2.
    """
    check_reduction(reduction)
    check_logits_and_labels(logits, y)
    log_p = F.log_softmax(logits, dim=1)
    return reduce_loss(-(reverse_labels(y, logits.shape[1], log_p.dtype) * log_p).sum(dim=1), reduction)


class ReverseCrossEntropyLoss(nn.Module):
    """Module form of [`reverse_cross_entropy`][] (paper eq. 4).

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Shape:
        - logits: ``(N, L)`` raw (not reversed) logits of the network being trained.
        - y: ``(N,)`` integer labels.
        - output: scalar, or ``(N,)`` with ``reduction="none"``.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        return reverse_cross_entropy(logits, y, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
