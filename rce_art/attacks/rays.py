"""RayS: a hard-label (decision-based) l_inf attack by ray searching (Chen & Gu, KDD 2020).

No gradients, only the predicted label: a direction ``d`` in ``{-1, 1}^D`` is improved by flipping the signs
of ever smaller blocks of coordinates, and the distance to the decision boundary along ``d`` is found by a
binary search. A gradient-masking defence that fools white-box attacks is not protected against it: when RayS
beats a white-box attack on the same inputs, suspect masked gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from rce_art._signature import SignatureParams
from rce_art._tensors import as_input_tensor, as_label_tensor, eval_mode, like
from rce_art._validation import check_integer, check_positive
from rce_art.models.estimator import Preprocessed, resolve_model

__all__ = ["RayS", "RaySResult"]


@dataclass
class RaySResult:
    """Outcome of [`RayS.run`][RayS.run] (tensors on the CPU).

    Attributes:
        x_adv: ``(N, ...)``: the adversarial example where one within ``eps`` was found, else the input.
        radius: ``(N,)`` l_inf distance to the decision boundary along the best direction found (``inf`` if none).
        queries: ``(N,)`` model queries spent per input (never above ``max_queries``).
        success: ``(N,)`` bool: misclassified within ``eps`` (inputs misclassified already count, 0 queries).
    """

    x_adv: Tensor
    radius: Tensor
    queries: Tensor
    success: Tensor


class RayS(SignatureParams):
    """Hard-label l_inf RayS, batched: all inputs of a batch search in lockstep, each within its own query budget.

    Args:
        classifier: ART ``PyTorchClassifier`` or ``nn.Module`` (only its predicted labels are used).
        eps: l_inf budget in pixel units; the search stops early for inputs whose boundary is within it.
        max_queries: Query budget per input (paper's Table 3 of the ER paper: 10,000).
        tol: Binary-search tolerance on the distance along the unit-L2 direction ``s / ||s||_2``, as a fraction of
            the pixel range (official code: 1e-3, on that direction); on the l_inf radius this is
            ``tol * range / sqrt(d)`` for ``d`` input dimensions.
        lin_steps: Radii tried to find a first boundary, ``k / lin_steps`` of the pixel range for
            ``k = 1..lin_steps`` (ours; the official code tries 1..10 in its own units).
        clip_values: Pixel range when ``classifier`` is a module without one.
        batch_size: Inputs searched together.
        early_stop: Stop an input once its radius is within ``eps`` (as the official code).
        verbose: Progress bar over the batches.

    References:
        J. Chen, Q. Gu. RayS: A Ray Searching Method for Hard-label Adversarial Attack. KDD 2020, Algorithm 1-3.
    """

    REPR_EXCLUDE = ("classifier",)

    def __init__(self, classifier: Any, eps: float, max_queries: int = 10_000, tol: float = 1e-3, lin_steps: int = 10,
                 clip_values: tuple[float, float] | None = None, batch_size: int = 256, early_stop: bool = True,
                 verbose: bool = False) -> None:
        self.classifier, self._view = classifier, resolve_model(classifier)
        self.clip_values = clip_values if clip_values is not None else self._view.clip_values
        if self.clip_values is None:
            raise ValueError("RayS needs the pixel range: pass clip_values or an ART classifier that has them")
        self.eps = check_positive(eps, "eps")
        self.max_queries, self.tol = check_integer(max_queries, "max_queries", 1), check_positive(tol, "tol")
        self.lin_steps, self.batch_size = check_integer(lin_steps, "lin_steps", 1), check_integer(batch_size, "batch_size", 1)
        self.early_stop, self.verbose = bool(early_stop), bool(verbose)
        self._model = Preprocessed(self._view) if self._view.has_preprocessing else self._view.model

    def generate(self, x: Any, y: Any = None) -> Any:
        """Adversarial examples like ``x`` (array or tensor); ``y``: true labels (default: the predictions)."""
        return like(self.run(x, y).x_adv, x, self.clip_values)

    @torch.no_grad()
    def run(self, x: Any, y: Any = None) -> RaySResult:
        """Attack ``x`` (``(N, ...)`` in the pixel range); returns the examples, radii, queries and successes."""
        dev = self._view.device
        xt = as_input_tensor(x, dev, self.clip_values)
        with eval_mode(self._model):
            yt = as_label_tensor(y, xt.shape[0], dev) if y is not None else self._model(xt).argmax(1)
            parts = [self._batch(xt[i : i + self.batch_size], yt[i : i + self.batch_size])
                     for i in tqdm(range(0, xt.shape[0], self.batch_size), desc="RayS", disable=not self.verbose,
                                   leave=False)]
        return RaySResult(*(torch.cat([p[k] for p in parts]).cpu() for k in range(4)))

    # --------------------------------------------------------------------- the search
    def _batch(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        lo, hi = self.clip_values
        span = hi - lo
        n, dim = x.shape[0], x[0].numel()
        tol_radius = self.tol * span / math.sqrt(dim)  # the official tolerance is along s / ||s||_2 = s / sqrt(d)
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        radius = torch.full((n,), float("inf"), device=x.device)
        wrong = self._model(x).argmax(1) != y  # already misclassified: nothing to do, no budget spent
        radius[wrong] = 0.0
        sign = torch.ones(n, dim, device=x.device)

        def adv(s: Tensor, r: Tensor, idx: Tensor) -> Tensor:
            return (x[idx] + r.view(-1, *[1] * (x.ndim - 1)) * s.view_as(x[idx])).clamp(lo, hi)

        def query(s: Tensor, r: Tensor, idx: Tensor) -> Tensor:
            """One query per input in ``idx`` (budget permitting): is ``x + r s`` misclassified?"""
            queries[idx] += 1
            return self._model(adv(s, r, idx)).argmax(1) != y[idx]

        def search(s: Tensor, idx: Tensor, lo_r: Tensor, hi_r: Tensor) -> Tensor:
            """Binary search of the boundary radius in ``[lo_r, hi_r]`` (``hi_r`` adversarial), within budget."""
            while True:
                go = ((hi_r - lo_r) > tol_radius) & (queries[idx] < self.max_queries)
                if not bool(go.any()):
                    return hi_r
                mid = (lo_r + hi_r) / 2
                g = torch.nonzero(go).flatten()
                hit = query(s[g], mid[g], idx[g])
                hi_r[g[hit]], lo_r[g[~hit]] = mid[g[hit]], mid[g[~hit]]

        # first boundary along d = (1, ..., 1): radii k/lin_steps of the range, then a binary search
        todo = torch.nonzero(~wrong).flatten()
        found = torch.full((n,), float("inf"), device=x.device)
        for k in range(1, self.lin_steps + 1):
            ask = todo[(found[todo] == float("inf")) & (queries[todo] < self.max_queries)]
            if ask.numel() == 0:
                break
            r = torch.full((ask.numel(),), k / self.lin_steps * span, device=x.device)
            hit = query(sign[ask], r, ask)
            found[ask[hit]] = r[hit]
        first = todo[found[todo] < float("inf")]
        if first.numel():
            radius[first] = search(sign[first], first, (found[first] - span / self.lin_steps).clamp_min(0),
                                   found[first].clone())
        # hierarchical block flips: blocks of D / 2^level coordinates, in order
        level, block = 0, 0
        while True:
            active = (~wrong) & (queries < self.max_queries)
            if self.early_stop:
                active &= radius > self.eps
            idx = torch.nonzero(active).flatten()
            if idx.numel() == 0:
                break
            size = int(np.ceil(dim / 2**level))
            start, end = block * size, min(dim, (block + 1) * size)
            trial = sign[idx].clone()
            trial[:, start:end] *= -1
            finite = radius[idx] < float("inf")
            better = torch.zeros(idx.numel(), dtype=torch.bool, device=x.device)
            # a flip can only help if the current radius along the new direction is already adversarial
            if bool(finite.any()):
                f = torch.nonzero(finite).flatten()
                better[f] = query(trial[f], radius[idx[f]], idx[f])
            # inputs without a boundary yet: look for one along the new direction at the full range
            if bool((~finite).any()):
                u = torch.nonzero(~finite & (queries[idx] < self.max_queries)).flatten()
                if u.numel():
                    better[u] = query(trial[u], torch.full((u.numel(),), span, device=x.device), idx[u])
                    radius[idx[u[better[u]]]] = span
            b = torch.nonzero(better).flatten()
            if b.numel():
                rows = idx[b]
                new_r = search(trial[b], rows, torch.zeros(b.numel(), device=x.device), radius[rows].clone())
                keep = new_r < radius[rows] + 1e-12
                sign[rows[keep]], radius[rows[keep]] = trial[b[keep]], new_r[keep]
            block += 1
            if block == 2**level or end == dim:
                level, block = level + 1, 0
                if 2**level > 2 * dim:  # every coordinate flipped on its own: start over from coarse blocks
                    level = 0
        success = radius <= self.eps
        all_idx = torch.arange(n, device=x.device)
        x_adv = torch.where(success.view(-1, *[1] * (x.ndim - 1)), adv(sign, radius.clamp_max(self.eps), all_idx), x)
        x_adv = torch.min(torch.max(x_adv, x - self.eps), x + self.eps).clamp(lo, hi)
        return x_adv, radius, queries, success | wrong

