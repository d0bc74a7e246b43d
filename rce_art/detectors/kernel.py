"""Gaussian kernel density in the final hidden layer, in log space (Pang et al. 2018, Section 3.3).

``KD(z) = (1/|X_c|) sum_{z_i in X_c} exp(-||z - z_i||^2 / sigma^2)`` is evaluated as
``logsumexp_i(-||z - z_i||^2 / sigma^2) - log |X_c|`` with squared distances from one
matrix product, so it neither underflows for small ``sigma`` nor flattens gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "PAPER_BANDWIDTHS",
    "KernelBank",
    "class_log_kdensity",
    "log_kdensity",
    "loo_log_kdensity",
    "loo_log_likelihood",
    "select_bandwidth",
    "squared_distances",
]

PAPER_BANDWIDTHS: dict[str, float] = {
    "paper-rce": math.sqrt(0.1 / 0.26),
    "paper-ce": math.sqrt(1.0 / 0.26),
}
"""The paper's bandwidths sigma (kernel ``exp(-d^2 / sigma^2)``) for its ResNet-32 features, from sigma^2 = 0.1/0.26 (RCE) and 1/0.26 (CE), Table 2 caption."""


def squared_distances(z: Tensor, kernel: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances ``(N, M)`` from one matrix product.

    Both sets are centred on the kernel mean first, which removes most of the
    cancellation error of ``|a|^2 - 2 a.b + |b|^2``; tiny negative round-off is clamped to 0.
    """
    centre = kernel.mean(dim=0, keepdim=True).detach()
    a, b = z - centre, kernel - centre
    d2 = (a * a).sum(1, keepdim=True) - 2.0 * a @ b.T + (b * b).sum(1).unsqueeze(0)
    return d2.clamp_min(0.0)


def log_kdensity(z: Tensor, kernel: Tensor, sigma: float) -> Tensor:
    """Log K-density of queries under one class's kernel points (paper Section 3.3).

    ``log KD(z) = logsumexp_i(-||z - z_i||^2 / sigma^2) - log M``. With both sets centred
    on the kernel mean (``a = z - c``, ``b_i = z_i - c``), ``-||a - b_i||^2`` splits into
    ``-||a||^2``, constant per query and taken out of the log-sum-exp, and
    ``2 a.b_i - ||b_i||^2``, one fused matrix product. No clamp or floor is applied, so
    the gradient in ``z`` is exact everywhere.

    Args:
        z: Query features, shape ``(N, D)``.
        kernel: Kernel (training) features of one class, shape ``(M, D)``, ``M >= 1``.
        sigma: Bandwidth ``sigma > 0`` of ``exp(-d^2 / sigma^2)``. scikit-learn's
            ``KernelDensity(bandwidth=h)`` uses ``exp(-d^2 / (2 h^2))``, i.e. ``h = sigma / sqrt(2)``.

    Returns:
        Tensor of shape ``(N,)``: unnormalised log density (the Gaussian normalising
        constant ``-(D/2) log(pi sigma^2)`` is left out, as in the paper).
    """
    inv = 1.0 / sigma**2
    centre = kernel.mean(dim=0, keepdim=True).detach()
    a, b = z - centre, kernel - centre
    cross = torch.addmm((b * b).sum(1).unsqueeze(0), a, b.T, beta=-inv, alpha=2.0 * inv)
    return torch.logsumexp(cross, dim=1) - inv * (a * a).sum(1) - math.log(kernel.shape[0])


@dataclass(frozen=True)
class KernelBank:
    """Per-class kernel points prepared once for repeated scoring (e.g. in an attack's inner loop).

    Every point is centred on the mean of *its own class*, and a query is centred on the mean of
    the class it is scored under, so the expansion ``|a|^2 - 2 a.b + |b|^2`` only ever combines
    vectors near the origin: float32 stays exact when class clusters lie far apart.

    Attributes:
        kernels: One ``(M_c, D)`` tensor per class.
        centres: Class means ``(C, D)``.
        centred: All points minus their class mean ``(M, D)``, grouped by class.
        labels: Class of each row of ``centred`` ``(M,)``.
        sq_norms: ``||centred_i||^2`` ``(M,)``.
        log_counts: ``log M_c`` per class ``(C,)``.
        columns: Per class, the rows of ``centred`` that belong to it, padded to the largest class ``(C, max M_c)``
            (derived from ``kernels``).
        padding: Where ``columns`` is padding ``(C, max M_c)`` bool (derived).
        has_padding: Whether any class is padded (derived once, so scoring never waits on the device for it).
    """

    kernels: tuple[Tensor, ...]
    centres: Tensor
    centred: Tensor
    labels: Tensor
    sq_norms: Tensor
    log_counts: Tensor
    columns: Tensor = field(init=False, repr=False, compare=False)
    padding: Tensor = field(init=False, repr=False, compare=False)
    has_padding: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        counts = [int(k.shape[0]) for k in self.kernels]
        dev = self.centred.device
        slot = torch.arange(max(counts, default=0), device=dev)
        starts = torch.tensor([0, *counts[:-1]], device=dev).cumsum(0)
        padding = slot[None] >= torch.tensor(counts, device=dev)[:, None]
        object.__setattr__(self, "columns", torch.where(padding, 0, starts[:, None] + slot))
        object.__setattr__(self, "padding", padding)
        object.__setattr__(self, "has_padding", bool(padding.any()))

    @classmethod
    def from_kernels(cls, kernels: Sequence[Tensor]) -> KernelBank:
        ks = tuple(k.detach() for k in kernels)
        centres = torch.stack([k.mean(0) for k in ks])
        centred = torch.cat([k - c for k, c in zip(ks, centres)])
        counts = torch.tensor([k.shape[0] for k in ks], device=centres.device)
        labels = torch.repeat_interleave(torch.arange(len(ks), device=centres.device), counts)
        return cls(ks, centres, centred, labels, (centred * centred).sum(1), counts.to(centres.dtype).log())


_MASKED_LIMIT = 1 << 22
"""Above this many query x kernel entries, scoring loops over classes instead of masking one product."""


def class_log_kdensity(z: Tensor, classes: Tensor, kernels: Sequence[Tensor] | KernelBank, sigma: float) -> Tensor:
    """Log K-density of each query under the kernel of its own class (paper Section 3.3).

    Small problems use one matrix product against all kernel points, then gather each query's own class
    (padded to the largest class) into the log-sum-exp (a few kernel launches, fast inside attack loops);
    large ones loop over the classes present ([`log_kdensity`][]). Both centre each query and each kernel
    point on the mean of the query's class, so both are exact in the same sense.

    Args:
        z: Query features ``(N, D)``.
        classes: Class of each query ``(N,)`` (the predicted class in the paper).
        kernels: One ``(M_c, D)`` tensor of kernel features per class, or a [`KernelBank`][].
        sigma: Bandwidth (see [`log_kdensity`][]).

    Returns:
        Tensor ``(N,)``, differentiable in ``z``.
    """
    bank = kernels if isinstance(kernels, KernelBank) else None
    total = bank.centred.shape[0] if bank is not None else sum(k.shape[0] for k in kernels)
    if z.shape[0] * total <= _MASKED_LIMIT:
        bank = bank or KernelBank.from_kernels(kernels)
        inv = 1.0 / sigma**2
        a = z - bank.centres[classes]
        # entries of other classes mix two centres and are meaningless: only each query's own class is gathered
        cross = torch.addmm(bank.sq_norms.unsqueeze(0), a, bank.centred.T, beta=-inv, alpha=2.0 * inv)
        own = cross.gather(1, bank.columns[classes])
        if bank.has_padding:
            own = own.masked_fill(bank.padding[classes], float("-inf"))
        return torch.logsumexp(own, dim=1) - inv * (a * a).sum(1) - bank.log_counts[classes]
    per_class = bank.kernels if bank is not None else kernels
    out = z.new_empty(z.shape[0])
    for c in torch.unique(classes).tolist():
        idx = (classes == c).nonzero(as_tuple=True)[0]
        out = out.index_put((idx,), log_kdensity(z[idx], per_class[c], sigma))
    return out


def _loo_sq_distances(queries: Tensor, kernel: Tensor) -> tuple[Tensor, Tensor]:
    """float64 squared distances with zero-distance pairs (a point itself, duplicates) set to ``inf``,
    and ``log`` of the number of kernel points left per query."""
    d2 = squared_distances(queries.detach().double(), kernel.detach().double())
    d2 = d2.masked_fill(d2 <= float(d2.max().clamp_min(1e-300)) * 1e-12, float("inf"))
    return d2, torch.isfinite(d2).sum(1).clamp_min(1).double().log()


def loo_log_kdensity(queries: Tensor, kernel: Tensor, sigma: float) -> Tensor:
    """Leave-one-out log K-density, in float64: each query scored without kernel points at distance zero.

    ``log((1/M_i) sum_{j: z_j != q_i} exp(-||q_i - z_j||^2 / sigma^2))`` with ``M_i`` the number of kernel
    points left for query ``i``. A training point scored against a kernel that contains it is not
    flattered by its own term (used for the C&W-wb margin ``eta`` and for bandwidth selection).

    Args:
        queries: ``(N, D)``.
        kernel: ``(M, D)``.
        sigma: Bandwidth ``> 0``.

    Returns:
        ``(N,)`` float64 (``-inf`` for a query with no other point).
    """
    d2, log_n = _loo_sq_distances(queries, kernel)
    return torch.logsumexp(-d2 / sigma**2, dim=1) - log_n


def loo_log_likelihood(kernels: Sequence[Tensor], sigmas: Sequence[float], max_queries: int = 500) -> Tensor:
    """Mean leave-one-out log-likelihood of the *normalised* Gaussian KDE for each bandwidth.

    Up to ``max_queries`` points of each class are scored by the density of the other
    points of their class, ``log((1/(M-1)) sum_{j != i} N(z_i; z_j, sigma^2/2 I))``;
    pairs at distance zero (the point itself, or duplicate features) are left out, so
    duplicates cannot drive ``sigma`` to zero. Classes with fewer than 2 points are skipped.

    Returns:
        Tensor ``(len(sigmas),)`` of mean log-likelihoods (float64).
    """
    s = torch.as_tensor(list(sigmas), dtype=torch.float64)
    total, count = torch.zeros_like(s), 0
    for k in kernels:
        if k.shape[0] < 2:
            continue
        d2, log_n_other = _loo_sq_distances(k[:max_queries], k)
        for j, sigma in enumerate(s.tolist()):
            ll = torch.logsumexp(-d2 / sigma**2, dim=1) - log_n_other
            ll = ll - 0.5 * k.shape[1] * math.log(math.pi * sigma**2)
            total[j] += ll[torch.isfinite(ll)].sum().cpu()
        count += min(k.shape[0], max_queries)
    if count == 0:
        raise ValueError("bandwidth selection needs at least one class with 2 or more distinct training points")
    return total / count


def select_bandwidth(kernels: Sequence[Tensor], n_grid: int = 41, max_queries: int = 500) -> tuple[float, Tensor, Tensor]:
    """Data-driven bandwidth: maximise the leave-one-out likelihood over a log-spaced grid.

    The grid spans ``[0.02, 4] x`` the typical within-class distance (the median over
    classes of the median pairwise distance), so it adapts to any model's feature scale.
    This is likelihood cross-validation (Duin 1976; Silverman 1986, Section 3.4.4) on the
    training points, each held out in turn (`loo_log_likelihood`).

    Args:
        kernels: One ``(M_c, D)`` tensor of training features per class.
        n_grid: Number of grid points.
        max_queries: Held-out points scored per class (bounds the cost for large classes).

    Returns:
        ``(sigma, grid, scores)``: the chosen bandwidth, the grid and its LOO scores.
    """
    medians = []
    for k in kernels:
        if k.shape[0] >= 2:
            q = k.detach().double()[:max_queries]
            iu = torch.triu_indices(q.shape[0], q.shape[0], offset=1)
            medians.append(float(squared_distances(q, q)[iu[0], iu[1]].sqrt().median()))
    scale = float(torch.tensor(medians).median()) if medians else 0.0
    if not scale > 0:
        raise ValueError("cannot select a bandwidth: all training features of each class are identical")
    grid = scale * torch.logspace(math.log10(0.02), math.log10(4.0), n_grid, dtype=torch.float64)
    scores = loo_log_likelihood(kernels, grid.tolist(), max_queries)
    return float(grid[int(scores.argmax())]), grid, scores
