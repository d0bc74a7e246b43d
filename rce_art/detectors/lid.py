"""Local intrinsic dimensionality (Ma et al., ICLR 2018): per-layer LID estimates combined by logistic regression."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rce_art._tensors import eval_mode
from rce_art._validation import check_integer
from rce_art.detectors.characteristics import CombinedDetector
from rce_art.detectors.layers import LayerFeatures

__all__ = ["LIDDetector", "lid_mle", "prepare_reference"]


def prepare_reference(reference: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor]:
    """What [`lid_mle`][] needs of a fixed reference set, computed once: ``(centre (1, D), centred reference (M, D),
    squared norms (1, M))`` in ``dtype``."""
    ref = reference.to(dtype)
    centre = ref.mean(0, keepdim=True)  # centring removes most of the cancellation of |a|^2 - 2 a.b + |b|^2
    b = ref - centre
    return centre, b, (b * b).sum(1).unsqueeze(0)


def lid_mle(queries: Tensor, reference: Tensor, k: int,
            prepared: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
    """Maximum-likelihood LID estimate ``LID(x) = -((1/k) sum_{i=1}^k log(r_i(x) / r_k(x)))^{-1}`` (Ma et al., eq. 4).

    ``r_i(x)`` is the distance from ``x`` to its ``i``-th nearest reference point; reference points identical to
    the query (the query itself, or a duplicate) are skipped. Distances come from one matrix product; the pairs
    it cannot resolve (squared distance within ``1e-4`` of the squared norms, where float32 cancellation leaves a
    self-distance of about ``1e-7`` times the largest one) are recomputed from their differences, which are
    exactly zero for an identical point in any precision.

    Args:
        queries: ``(N, D)``.
        reference: ``(M, D)`` with ``M > k``.
        k: Neighbours (paper: 20).
        prepared: ``prepare_reference(reference, queries.dtype)``, when the reference is fixed and scored often (an
            attack's loop): skips recomputing it per call.

    Returns:
        ``(N,)`` LID estimates, differentiable in ``queries``.

    Raises:
        ValueError: If there are not more than ``k`` reference points, or fewer than ``k`` of them differ from a
            query.
    """
    if reference.shape[0] <= k:
        raise ValueError(f"LID with k={k} needs more than k reference points, got {reference.shape[0]}")
    centre, b, nb = prepared if prepared is not None else prepare_reference(reference, queries.dtype)
    a = queries - centre
    na = (a * a).sum(1, keepdim=True)
    d2 = torch.addmm(nb, a, b.T, alpha=-2.0) + na
    with torch.no_grad():
        qi, ri = torch.nonzero(d2 <= 1e-4 * (na + nb), as_tuple=True)  # unresolved by the product form
    if qi.numel():
        exact = (a[qi] - b[ri]).pow(2).sum(1)
        d2 = d2.index_put((qi, ri), exact)
        same = exact.detach() == 0
        d2 = d2.index_put((qi[same], ri[same]), torch.full_like(exact[same], float("inf")))
        if bool((torch.isfinite(d2).sum(1) < k).any()):
            raise ValueError(f"fewer than k={k} reference points differ from a query; use more reference points")
    r = d2.topk(k, dim=1, largest=False).values.clamp_min(0.0).sqrt()
    logs = torch.log(r / r[:, -1:]).sum(1)
    return -k / logs.clamp_max(-1e-12)


class LIDDetector(CombinedDetector):
    """Per-layer LID of an input against a fixed reference set of clean training points, combined by a regression.

    Ma et al. estimate LID against the clean points of the same test minibatch (100), so an adversarial
    example is compared with its own clean counterpart among others. Here the reference is a seeded sample
    of ``n_reference`` clean training points drawn at ``fit`` (disjoint from every evaluation input), so an
    input's score does not depend on which batch it comes in. Score: ``-logit`` of the regression (higher =
    more normal).

    Args:
        classifier: ART ``PyTorchClassifier`` or ``nn.Module`` (ordinary logits).
        layers: ``"all"`` (the input and every layer called in a forward pass, as Ma et al.) or names (see
            [`leaf_layers`][rce_art.detectors.layers.leaf_layers]; ``"input"`` and ``"features"`` are also accepted).
        k: Nearest neighbours of the estimate (paper: 20).
        n_reference: Clean reference points (paper: the minibatch of 100).
        fpr: Target false-positive rate of the threshold.
        calibration_fraction: Share of ``fit``'s inputs held out for the threshold without ``x_calibration``.
        batch_size: Inputs per forward pass.
        seed: Seed of the samples, the noise and the splits.
        verbose: Progress bar.

    References:
        X. Ma, B. Li, Y. Wang, S. Erfani, S. Wijewickrema, G. Schoenebeck, D. Song, M. Houle, J. Bailey.
        Characterizing Adversarial Subspaces Using Local Intrinsic Dimensionality. ICLR 2018, Section 4.
    """

    format_tag = "rce_art.LIDDetector/1"
    report_key = "neg_logit"

    def __init__(self, classifier: Any, layers: str | Sequence[str] = "all", k: int = 20, n_reference: int = 100,
                 fpr: float = 0.05, calibration_fraction: float = 0.2, batch_size: int = 100, seed: int = 0,
                 verbose: bool = False) -> None:
        super().__init__(classifier, layer=None, fpr=fpr, batch_size=batch_size, verbose=verbose)
        self.layers = layers if isinstance(layers, str) else list(layers)
        self.k, self.n_reference, self.calibration_fraction, self.seed = k, n_reference, calibration_fraction, seed
        self._check_params()
        self._bind()

    def _check_params(self) -> None:
        super()._check_params()
        if isinstance(self.layers, str) and self.layers != "all":
            raise ValueError(f"layers must be 'all' or a list of layer names, got {self.layers!r}")
        check_integer(self.k, "k", 1)
        if check_integer(self.n_reference, "n_reference", 2) <= self.k:
            raise ValueError(f"n_reference must be an integer > k = {self.k}, got {self.n_reference!r}")

    def characteristics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, feats = self._tap(self.view.preprocess(x))
        prepared = self._prepared(feats[0].dtype)
        return logits, torch.stack([lid_mle(f, r, int(self.k), p) for f, r, p in zip(feats, self.reference_, prepared)],
                                   dim=1)

    def _prepared(self, dtype: torch.dtype) -> list[tuple[Tensor, Tensor, Tensor]]:
        """The reference sets prepared for [`lid_mle`][] once per fit and dtype (they are fixed once fitted)."""
        cache = self.__dict__.setdefault("_prepared_cache", {})
        key = (dtype, id(self.reference_))
        if key not in cache:
            cache.clear()
            cache[key] = [prepare_reference(r, dtype) for r in self.reference_]
        return cache[key]

    def _fit_unsupervised(self, x: np.ndarray, y: np.ndarray, batch_size: int | None) -> None:
        if x.shape[0] <= self.k:
            raise ValueError(f"LID needs more than k = {self.k} clean fit inputs, got {x.shape[0]}")
        idx = np.random.default_rng(self.seed).permutation(x.shape[0])[: int(self.n_reference)]
        xr = torch.as_tensor(x[idx], dtype=torch.float32).to(self.device)
        with torch.no_grad(), eval_mode(self.model):
            xp = self.view.preprocess(xr)
            self.layers_ = LayerFeatures.called_layers(self.model, xp[:1]) if self.layers == "all" else list(self.layers)
            self._tap = LayerFeatures(self.model, self.layers_)
            self.reference_ = [f.detach().clone() for f in self._tap(xp)[1]]
        if len(self.reference_[0]) <= self.k:
            raise ValueError(f"n_reference={len(self.reference_[0])} clean points are not more than k={self.k}")

    def _unsupervised_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        return {"layers_": self.layers_}, {f"reference.{i}": r for i, r in enumerate(self.reference_)}

    def _restore_unsupervised(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        self.layers_ = list(meta["layers_"])
        self._tap = LayerFeatures(self.model, self.layers_)
        self.reference_ = [tensors[f"reference.{i}"].to(self.device) for i in range(len(self.layers_))]

    def _clear_fitted(self) -> None:
        super()._clear_fitted()
        self.__dict__.pop("_tap", None)
        self.__dict__.pop("_prepared_cache", None)
