"""Detection metrics on logits: confidence and non-ME (Pang et al. 2018, Section 3.1).

Both follow the library's sign convention for scores: **higher means more normal**.
They take ordinary logits (for an RCE-trained network, the reversed logits ``-Z``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["confidence", "non_me"]


def _check(logits: Tensor) -> None:
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a torch tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (N, L) with N >= 1 and L >= 2, got {tuple(logits.shape)}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contain NaN or infinite values")


def confidence(logits: Tensor) -> Tensor:
    """Confidence ``F(x)_ŷ``: the softmax probability of the predicted class.

    Args:
        logits: Ordinary logits, shape ``(N, L)``.

    Returns:
        Tensor of shape ``(N,)`` in ``[1/L, 1]``.

    Raises:
        TypeError: If ``logits`` is not a floating tensor.
        ValueError: On a wrong shape, an empty batch or non-finite values.
    """
    _check(logits)
    return F.log_softmax(logits, dim=1).max(dim=1).values.exp()


def non_me(logits: Tensor) -> Tensor:
    """Non-maximal entropy (paper eq. 1): entropy of the normalised non-maximal softmax outputs.

    ``non-ME(x) = -sum_{i != ŷ} F̂_i log F̂_i`` with ``F̂_i = F_i / sum_{j != ŷ} F_j``.
    Since ``F̂`` is the softmax of the logits with the predicted class removed, it is
    computed from a masked log-softmax: no probability is ever divided or logged, so
    the result stays finite (0, not NaN) when some ``F_i`` underflow to 0.

    Args:
        logits: Ordinary logits, shape ``(N, L)``.

    Returns:
        Tensor of shape ``(N,)`` in ``[0, log(L-1)]``.

    Raises:
        TypeError: If ``logits`` is not a floating tensor.
        ValueError: On a wrong shape, an empty batch or non-finite values.

    References:
        Pang et al., Towards Robust Detection of Adversarial Examples, NeurIPS 2018, eq. (1).
    """
    _check(logits)
    top = logits.argmax(dim=1, keepdim=True)
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, top, True)
    masked = logits.masked_fill(mask, float("-inf"))
    log_p = F.log_softmax(masked, dim=1).masked_fill(mask, 0.0)  # finite everywhere, also for gradients
    p = log_p.exp().masked_fill(mask, 0.0)
    return -(p * log_p).sum(dim=1)
