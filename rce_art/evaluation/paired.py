"""The paired protocol's primitives (Pang et al. 2018, Section 4.3): kept pairs, ROC-AUC, TPR at a fixed FPR,
distortion. Shared by the single-detector protocol and the side-by-side detector evaluation."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["detection_auc", "distortion", "kept_pairs", "tpr_at_fpr"]


def kept_pairs(y: np.ndarray, pred_clean: np.ndarray, pred_adv: np.ndarray) -> np.ndarray:
    """Boolean mask of the pairs the protocol keeps: clean correct and adversarial wrong."""
    y, pc, pa = (np.asarray(a).ravel() for a in (y, pred_clean, pred_adv))
    if not (y.shape == pc.shape == pa.shape):
        raise ValueError(f"y, pred_clean and pred_adv must have one shape, got {y.shape}, {pc.shape}, {pa.shape}")
    return (pc == y) & (pa != y)


def detection_auc(clean_scores: np.ndarray, adv_scores: np.ndarray) -> float:
    """ROC-AUC of flagging adversarial inputs by *low* score (1.0 = perfect, 0.5 = chance).

    Returns ``nan`` if either set is empty.
    """
    c, a = np.asarray(clean_scores, np.float64).ravel(), np.asarray(adv_scores, np.float64).ravel()
    if c.size == 0 or a.size == 0:
        return float("nan")
    labels = np.r_[np.zeros(c.size), np.ones(a.size)]
    return float(roc_auc_score(labels, -np.r_[c, a]))


def tpr_at_fpr(clean_scores: np.ndarray, adv_scores: np.ndarray, fpr: float = 0.05) -> float:
    """Fraction of adversarial inputs flagged at the largest ROC operating point with FPR <= ``fpr``."""
    c, a = np.asarray(clean_scores, np.float64).ravel(), np.asarray(adv_scores, np.float64).ravel()
    if c.size == 0 or a.size == 0:
        return float("nan")
    f, t, _ = roc_curve(np.r_[np.zeros(c.size), np.ones(a.size)], -np.r_[c, a])
    return float(t[f <= fpr + 1e-12].max())


def distortion(x: np.ndarray, x_adv: np.ndarray, clip_values: tuple[float, float]) -> np.ndarray:
    """Per-example distortion ``sqrt(sum((x* - x)^2) / d)`` with pixels on the [0, 255] scale (paper Sec. 4.3)."""
    x, x_adv = np.asarray(x, np.float64), np.asarray(x_adv, np.float64)
    if x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv must have one shape, got {x.shape} and {x_adv.shape}")
    scale = 255.0 / (clip_values[1] - clip_values[0])
    diff = (x_adv - x).reshape(x.shape[0], -1) * scale
    return np.sqrt((diff**2).sum(1) / diff.shape[1])
