"""PDM's embedding losses: Siamese cosine loss and reduce-variance loss (PDM paper, Sections 3.1-3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ReduceVarianceLoss", "SiameseCosineLoss", "reduce_variance_loss", "siamese_cosine_loss"]


def _check_embeddings(*zs: Tensor) -> None:
    for z in zs:
        if not isinstance(z, Tensor) or not z.is_floating_point():
            raise TypeError("embeddings must be floating-point torch tensors")
        if z.ndim != 2 or z.shape[0] == 0:
            raise ValueError(f"embeddings must have shape (N, D) with N >= 1, got {tuple(z.shape)}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError("embeddings contain NaN or infinite values")


def siamese_cosine_loss(z1: Tensor, z2: Tensor, same: Tensor, eps: float = 1e-8) -> Tensor:
    """Siamese cosine loss ``mean_b |cos(z1_b, z2_b) - s_b|`` (PDM paper, Sec. 3.1 and Algorithm 1, line 17).

    Pushes the cosine similarity of a pair's embeddings to 1 for same-class pairs (``s = 1``)
    and to 0 for different-class pairs (``s = 0``).

    Args:
        z1: Embeddings of the first members of the pairs, ``(N, D)``.
        z2: Embeddings of the second members, ``(N, D)``.
        same: ``(N,)`` 1 for same-class pairs, 0 otherwise (bool or float).
        eps: Guards the norms of all-zero embeddings.

    Returns:
        Scalar tensor, 0 exactly when every same-class pair is parallel and every other pair orthogonal.
    """
    _check_embeddings(z1, z2)
    if z1.shape != z2.shape or same.shape != (z1.shape[0],):
        raise ValueError(f"z1, z2 must have one shape (N, D) and same shape (N,); got {tuple(z1.shape)}, "
                         f"{tuple(z2.shape)}, {tuple(same.shape)}")
    cos = F.cosine_similarity(z1, z2, dim=1, eps=eps)
    return (cos - same.to(cos.dtype)).abs().mean()


def reduce_variance_loss(z: Tensor, labels: Tensor) -> Tensor:
    """Reduce-variance loss (PDM paper, eq. 5): per-class embedding variance in the batch, averaged over classes.

    ``sigma_c = (1/N_c) sum_{j in c} ||z_j - mu_c||^2`` and ``RVL = mean_{c present} sigma_c``. A class
    with one sample in the batch contributes 0 (no NaN).

    Args:
        z: Embeddings ``(N, D)``.
        labels: Integer classes ``(N,)``.

    Returns:
        Scalar tensor.
    """
    _check_embeddings(z)
    if labels.shape != (z.shape[0],):
        raise ValueError(f"labels must have shape ({z.shape[0]},), got {tuple(labels.shape)}")
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    k = classes.numel()
    sums = torch.zeros(k, z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, inverse, z)
    means = sums / counts[:, None].to(z.dtype)
    sq = (z - means[inverse]).pow(2).sum(1)
    sigma = torch.zeros(k, dtype=z.dtype, device=z.device).index_add_(0, inverse, sq) / counts.to(z.dtype)
    return sigma.mean()


class SiameseCosineLoss(nn.Module):
    """Module form of [`siamese_cosine_loss`][]. Shapes: ``z1, z2 (N, D)``, ``same (N,)`` -> scalar."""

    def forward(self, z1: Tensor, z2: Tensor, same: Tensor) -> Tensor:
        return siamese_cosine_loss(z1, z2, same)


class ReduceVarianceLoss(nn.Module):
    """Module form of [`reduce_variance_loss`][]. Shapes: ``z (N, D)``, ``labels (N,)`` -> scalar."""

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return reduce_variance_loss(z, labels)
