"""Threshold calibration for score-based detectors (higher score = more normal)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["calibrate_threshold", "is_flagged"]


def is_flagged(scores: Any, threshold: float) -> Any:
    """The one flag rule of the family: an input is flagged when its score is below the threshold.

    Scores are "higher = more normal"; a NaN score (an input that could not be scored) is flagged too:
    ``not (score >= threshold)``.

    Args:
        scores: Scores ``(N,)``: a tensor (compared in float64, stays a tensor), or an array or sequence.
        threshold: The operating threshold ``T``.

    Returns:
        Boolean ``(N,)``: a tensor for a tensor, else a numpy array.
    """
    if isinstance(scores, torch.Tensor):
        return ~(scores.double() >= threshold)
    return ~(np.asarray(scores, dtype=np.float64) >= threshold)


def calibrate_threshold(clean_scores: np.ndarray, fpr: float) -> float:
    """Threshold ``T`` such that at most a fraction ``fpr`` of clean scores fall below it.

    An input is flagged adversarial when its score is ``< T``. ``T`` is the
    ``floor(fpr * n)``-th smallest clean score, so the empirical false-positive rate on
    the calibration set is ``floor(fpr * n) / n <= fpr`` (exactly, absent ties).

    Args:
        clean_scores: Scores of held-out clean inputs, shape ``(n,)``, finite.
        fpr: Target false-positive rate in ``[0, 1)``.

    Returns:
        The threshold as a float.

    Raises:
        ValueError: If ``fpr`` is outside ``[0, 1)`` or the scores are empty or non-finite.
    """
    if not 0.0 <= fpr < 1.0:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}")
    s = np.sort(np.asarray(clean_scores, dtype=np.float64).ravel())
    if s.size == 0:
        raise ValueError("cannot calibrate a threshold on zero clean scores")
    if not np.isfinite(s).all():
        raise ValueError("clean scores contain NaN or infinite values")
    return float(s[int(np.floor(fpr * s.size))])
