"""Logistic-regression combiners over detection characteristics, and noisy negatives matched to an attack.

Feinman et al. (KD + BU) and Ma et al. (LID) combine per-input characteristics with a logistic
regression trained on clean (and noisy) vs adversarial inputs. Both reference codes leak: Feinman's
scores its regression on the rows it was fitted on, LID's fits its scaler before the train/test split.
Here the z-scoring statistics and the regression are fitted on the fit rows only, and the scoring is a
differentiable torch function of the characteristics, for adaptive attacks.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["LogisticCombiner", "is_sparse_attack", "matched_flip_noise", "matched_gaussian_noise"]


class LogisticCombiner:
    """z-scored logistic regression: ``logit(c) = w . (c - mean) / std + b`` (adversarial = positive class).

    Args:
        seed: Seed of the cross-validation folds.
        cv: Folds of scikit-learn's ``LogisticRegressionCV`` (regularisation chosen by CV on the fit rows).

    Attributes:
        mean_ (Tensor): z-scoring means of the fit rows ``(F,)``.
        std_ (Tensor): z-scoring standard deviations ``(F,)``.
        coef_ (Tensor): Weights ``(F,)``.
        intercept_ (float): Intercept.
        n_fit_ (dict): Rows per class the regression saw.
    """

    def __init__(self, seed: int = 0, cv: int = 5) -> None:
        self.seed, self.cv = seed, cv

    def fit(self, negatives: Tensor, positives: Tensor, groups: Any = None) -> LogisticCombiner:
        """Fit on characteristics ``(n0, F)`` of normal (clean, noisy) and ``(n1, F)`` of adversarial inputs.

        The regularisation is chosen by cross-validation over shuffled, class-stratified folds; with ``groups``
        (the source image of each row, negatives then positives: a clean input, its noisy copy and its adversarial
        example share one) every copy of an image falls in one fold, so no fold is scored on an image it was
        fitted on.

        Raises:
            ValueError: On non-finite characteristics, fewer than 2 rows of a class, or ``groups`` of another
                length.
        """
        from sklearn.linear_model import LogisticRegressionCV
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        neg, pos = negatives.detach().double().cpu(), positives.detach().double().cpu()
        if neg.shape[0] < 2 or pos.shape[0] < 2:
            raise ValueError(f"the combiner needs at least 2 normal and 2 adversarial rows, got {neg.shape[0]} and "
                             f"{pos.shape[0]}")
        x = torch.cat([neg, pos])
        if not bool(torch.isfinite(x).all()):
            raise ValueError("detection characteristics contain NaN or infinite values")
        self.mean_ = x.mean(0)
        self.std_ = x.std(0).clamp_min(1e-12)
        z = ((x - self.mean_) / self.std_).numpy()
        y = np.r_[np.zeros(neg.shape[0]), np.ones(pos.shape[0])]
        folds = int(min(self.cv, neg.shape[0], pos.shape[0]))
        if groups is None:
            splits = list(StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(z, y))
        else:
            groups = np.asarray(groups)
            if groups.shape != (z.shape[0],):
                raise ValueError(f"groups must have one entry per row ({z.shape[0]}), got shape {groups.shape}")
            folds = int(min(folds, np.unique(groups[y == 0]).size, np.unique(groups[y == 1]).size))
            splits = list(StratifiedGroupKFold(folds, shuffle=True, random_state=self.seed).split(z, y, groups))
        with warnings.catch_warnings():  # scikit-learn >= 1.8 announces changes of defaults we do not rely on
            warnings.simplefilter("ignore", FutureWarning)
            lr = LogisticRegressionCV(cv=splits, max_iter=2000, random_state=self.seed).fit(z, y)
        self.coef_ = torch.as_tensor(lr.coef_[0], dtype=torch.float64)
        self.intercept_ = float(lr.intercept_[0])
        self.n_fit_ = {"normal": int(neg.shape[0]), "adversarial": int(pos.shape[0])}
        return self

    def logit(self, characteristics: Tensor) -> Tensor:
        """Log-odds of "adversarial" ``(N,)``, differentiable in the characteristics ``(N, F)``."""
        c = characteristics
        mean, std, w = (t.to(device=c.device, dtype=c.dtype) for t in (self.mean_, self.std_, self.coef_))
        return ((c - mean) / std) @ w + self.intercept_

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """JSON scalars and tensors for persistence."""
        return ({"intercept_": self.intercept_, "n_fit_": self.n_fit_, "seed": self.seed, "cv": self.cv},
                {"combiner.mean_": self.mean_, "combiner.std_": self.std_, "combiner.coef_": self.coef_})

    @classmethod
    def from_state(cls, meta: dict[str, Any], tensors: dict[str, Tensor]) -> LogisticCombiner:
        c = cls(meta["seed"], meta["cv"])
        c.mean_, c.std_, c.coef_ = (tensors[f"combiner.{k}"] for k in ("mean_", "std_", "coef_"))
        c.intercept_, c.n_fit_ = float(meta["intercept_"]), meta["n_fit_"]
        return c


def matched_flip_noise(x: Any, x_adv: Any, clip_values: tuple[float, float], seed: int = 0) -> tuple[np.ndarray, float]:
    """Copies of ``x`` with as many random pixels set to the range's ends as the attack changed (an L0 match).

    For sparse attacks (JSMA), Feinman et al.'s code makes its noisy negatives by flipping randomly chosen
    pixels to the minimum or maximum, as many as the attack changed on average; Gaussian noise of matched L2
    would spread over every pixel instead.

    Returns:
        ``(x_noisy, k)``: noisy inputs (float32 numpy) and the number of pixels flipped per input.
    """
    xa, aa = np.asarray(x, dtype=np.float32), np.asarray(x_adv, dtype=np.float32)
    if xa.shape != aa.shape:
        raise ValueError(f"x and x_adv must have one shape, got {xa.shape} and {aa.shape}")
    flat = xa.reshape(len(xa), -1)
    k = round(float((np.abs(aa - xa).reshape(len(xa), -1) > 1e-6).sum(1).mean()))
    rng = np.random.default_rng(seed)
    noisy = flat.copy()
    lo, hi = clip_values
    for i in range(len(flat)):
        idx = rng.choice(flat.shape[1], size=min(k, flat.shape[1]), replace=False)
        noisy[i, idx] = np.where(rng.random(idx.size) < 0.5, lo, hi)
    return noisy.reshape(xa.shape).astype(np.float32), float(k)


def is_sparse_attack(x: Any, x_adv: Any, fraction: float = 0.25) -> bool:
    """Whether the attack changed fewer than ``fraction`` of the pixels on average (an L0 attack such as JSMA)."""
    d = np.abs(np.asarray(x_adv, dtype=np.float32) - np.asarray(x, dtype=np.float32)).reshape(len(x), -1)
    return bool((d > 1e-6).mean() < fraction)


def matched_gaussian_noise(x: Any, x_adv: Any, clip_values: tuple[float, float], seed: int = 0,
                           iterations: int = 40) -> tuple[np.ndarray, float]:
    """Gaussian-noise copies of ``x`` whose mean L2 distortion equals that of ``x_adv``.

    The reference codes of Feinman et al. and Ma et al. hand-tune the noise standard deviation per
    dataset and attack "so that the mean L2 matches the adversarial examples"; this finds it by
    bisection on one seeded noise draw (the clipped distortion grows monotonically with the scale).

    Args:
        x: Clean inputs ``(N, ...)``.
        x_adv: Their adversarial examples (same shape).
        clip_values: Pixel range; the noisy inputs are clipped to it.
        seed: Seed of the noise draw.
        iterations: Bisection steps.

    Returns:
        ``(x_noisy, std)``: noisy inputs (float32 numpy) and the standard deviation used.
    """
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    at = torch.as_tensor(np.asarray(x_adv), dtype=torch.float64)
    if xt.shape != at.shape:
        raise ValueError(f"x and x_adv must have one shape, got {tuple(xt.shape)} and {tuple(at.shape)}")
    target = float((at - xt).flatten(1).norm(dim=1).mean())
    noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    lo, hi = clip_values

    def l2(std: float) -> float:
        return float(((xt + std * noise).clamp(lo, hi) - xt).flatten(1).norm(dim=1).mean())

    a, b = 0.0, float(hi - lo)
    while l2(b) < target and b < 1e3 * (hi - lo):
        b *= 2.0
    for _ in range(iterations):
        m = 0.5 * (a + b)
        a, b = (m, b) if l2(m) < target else (a, m)
    std = 0.5 * (a + b)
    return (xt + std * noise).clamp(lo, hi).float().numpy(), std
