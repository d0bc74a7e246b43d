"""Differentiable torch forms of pytorch-ood's feature-based outlier scores, read from their public fitted state.

pytorch-ood computes the scores of ``Mahalanobis``, ``ViM`` and ``KNN`` under ``torch.no_grad`` (KNN in scikit-learn),
so an attack gets no gradient through them. These functions compute the same outlier scores (higher = more unusual,
pytorch-ood's direction) as differentiable torch functions of the features, in float64 (fewer ties than float32);
[`OODDetector`][rce_art.adapters.OODDetector] checks them equal to pytorch-ood's own scores on the fit inputs
before it uses them.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["knn_outlier", "mahalanobis_outlier", "vim_outlier"]


def mahalanobis_outlier(z: Tensor, mu: Tensor, precision: Tensor) -> Tensor:
    """Half the squared Mahalanobis distance to the closest class mean (Lee et al. 2018, eq. 2, pytorch-ood's form).

    Args:
        z: Features ``(N, D)``.
        mu: Class means ``(C, D)``.
        precision: Shared precision matrix ``(D, D)`` (pytorch-ood: the inverse of the summed class scatter).

    Returns:
        ``(N,)`` float64 ``min_c 0.5 (z - mu_c)^T P (z - mu_c)``, differentiable in ``z``.

    References:
        K. Lee, K. Lee, H. Lee, J. Shin. A Simple Unified Framework for Detecting Out-of-Distribution Samples and
        Adversarial Attacks. NeurIPS 2018, eq. (2).
    """
    d = z.double()[:, None, :] - mu.double()[None]
    return 0.5 * torch.einsum("ncd,de,nce->nc", d, precision.double(), d).min(1).values


def vim_outlier(z: Tensor, w: Tensor, b: Tensor, u: Tensor, null_space: Tensor, alpha: float) -> Tensor:
    """ViM's outlier score: the scaled norm of the features' residual minus the energy (Wang et al. 2022, eq. 6).

    Args:
        z: Features ``(N, D)``.
        w: Weights of the last layer ``(C, D)``.
        b: Its biases ``(C,)``.
        u: The origin ``-pinv(w) b`` ``(D,)``.
        null_space: The residual space ``(D, D - d)`` (pytorch-ood's ``principal_subspace``).
        alpha: Scale of the virtual logit.

    Returns:
        ``(N,)`` float64 ``alpha ||(z - u) R|| - logsumexp(w z + b)``, differentiable in ``z``.

    References:
        H. Wang, Z. Li, L. Feng, W. Zhang. ViM: Out-Of-Distribution with Virtual-logit Matching. CVPR 2022, eq. (6).
    """
    z = z.double()
    logits = z @ w.double().T + b.double()
    virtual = ((z - u.double()) @ null_space.double()).norm(dim=-1) * float(alpha)
    return virtual - torch.logsumexp(logits, dim=-1)


def knn_outlier(z: Tensor, bank: Tensor, k: int, normalize: bool) -> Tensor:
    """Distance to the ``k``-th nearest fit feature (Sun et al. 2022, eq. 2; normalised to unit length if asked).

    The neighbour is chosen on the squared-distance expansion; its distance is then recomputed directly, so the value
    has no cancellation error and the gradient is that of ``||z - z_(k)||``.

    Args:
        z: Query features ``(N, D)``.
        bank: Fit features ``(M, D)``, already normalised when ``normalize`` (``M >= k``).
        k: Rank of the neighbour.
        normalize: Normalise the queries to unit length first (as pytorch-ood's ``KNN(normalize=True)``).

    Returns:
        ``(N,)`` float64 distances, differentiable in ``z``.

    References:
        Y. Sun, Y. Ming, X. Zhu, Y. Li. Out-of-Distribution Detection with Deep Nearest Neighbors. ICML 2022, eq. (2).
    """
    q = z.double()
    if normalize:
        q = q / q.norm(dim=1, keepdim=True).clamp(min=1e-12)  # pytorch-ood's own guard for a zero feature vector
    bank = bank.to(q)
    with torch.no_grad():
        sq = (q * q).sum(1, keepdim=True) + (bank * bank).sum(1)[None] - 2.0 * q @ bank.T
        idx = sq.kthvalue(int(k), dim=1).indices
    return (q - bank[idx]).norm(dim=1)
