"""Intervals that include the threshold's own uncertainty: a bootstrap over calibration, evaluated and held-out inputs.

The operating threshold is estimated from a finite set of clean calibration scores; the Wilson intervals of the
report treat it as fixed. [`bootstrap_operating_point`][] resamples the calibration scores, the evaluated inputs and
the held-out clean inputs together (each with replacement, independently), re-fits the threshold on each calibration
resample and recomputes the robust accuracy with detection, the success rate over the served inputs and the realised
false-positive rate; the 2.5% and 97.5% percentiles of the resamples are the interval (Efron's percentile bootstrap).

The attacks' examples are held fixed (the evaluation ran them at one threshold ``t``): at a resampled threshold an
input counts as broken when its example is misclassified and scores at or above that threshold, and (with
``attacked_threshold=t``, ours) an input broken at ``t`` stays broken at any resampled threshold: adaptive attacks
leave their examples just above the threshold they attack, and re-run at a higher one they would push the score that
little further. Without it, every resample with a higher threshold would flag those examples and the upper end of the
robust-accuracy interval would read "no attack" (measured on digits: [0.000, 0.535] around a point estimate of 0.035).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rce_art.detectors.calibration import calibrate_threshold, is_flagged

__all__ = ["BOOTSTRAP_RESAMPLES", "bootstrap_operating_point"]

BOOTSTRAP_RESAMPLES = 1000
"""Resamples of the report's bootstrap intervals."""


def bootstrap_operating_point(y: Any, clean_pred: Any, clean_score: Any, adv_pred: Any, adv_score: Any,
                              calibration_scores: Any, held_out_scores: Any, fpr: float, *,
                              attacked_threshold: float | None = None, n_resamples: int = BOOTSTRAP_RESAMPLES,
                              seed: int = 0, level: float = 0.95) -> dict[str, dict[str, float]]:
    """Percentile-bootstrap intervals of one operating point, the threshold re-fitted on each resample.

    Args:
        y: True labels of the evaluated inputs ``(N,)``.
        clean_pred: The classifier's predictions on them ``(N,)``.
        clean_score: The detector's scores on them ``(N,)``.
        adv_pred: Predictions on the attacks' examples ``(N,)`` (an input's best attempt).
        adv_score: Scores of those examples ``(N,)``.
        calibration_scores: The clean scores the threshold is calibrated on ``(C,)``.
        held_out_scores: Held-out clean scores for the realised false-positive rate ``(H,)``.
        fpr: The nominal false-positive rate (the threshold is its quantile of the calibration scores).
        attacked_threshold: The threshold the attacks ran at: an input broken there stays broken in every resample
            (see the module docstring). ``None``: only the fixed examples' scores decide.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.
        level: Coverage of the intervals.

    Returns:
        ``{"robust_accuracy", "sr", "realised_fpr", "threshold"}``, each ``{"rate", "lo", "hi"}`` (``rate``: at the
        threshold fitted on all the calibration scores), plus ``{"n_resamples": ...}``.

    Raises:
        ValueError: On empty or mismatched inputs, or ``fpr`` outside ``[0, 1)``.

    Example:
        ```python
        ci = bootstrap_operating_point(y, pred, score, adv_pred, adv_score, det.calibration_scores_.numpy(),
                                       held_out_scores, fpr=0.05)
        print(ci["robust_accuracy"])  # {"rate": ..., "lo": ..., "hi": ...}
        ```
    """
    y, clean_pred, adv_pred = (np.asarray(a, np.int64) for a in (y, clean_pred, adv_pred))
    clean_score, adv_score = np.asarray(clean_score, np.float64), np.asarray(adv_score, np.float64)
    cal, held = np.asarray(calibration_scores, np.float64), np.asarray(held_out_scores, np.float64)
    n = y.size
    if n == 0 or cal.size == 0 or held.size == 0:
        raise ValueError(f"need evaluated, calibration and held-out inputs, got {n}, {cal.size} and {held.size}")
    if not (clean_pred.size == clean_score.size == adv_pred.size == adv_score.size == n):
        raise ValueError("y, clean_pred, clean_score, adv_pred and adv_score must have one entry per input")
    if not 0.0 <= float(fpr) < 1.0:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}")
    correct, adv_wrong = clean_pred == y, adv_pred != y
    kept = adv_wrong & ~is_flagged(adv_score, float(attacked_threshold)) if attacked_threshold is not None else (
        np.zeros(n, bool))

    def rates(t: float, idx: np.ndarray, hidx: np.ndarray) -> tuple[float, float, float]:
        served = correct[idx] & ~is_flagged(clean_score[idx], t)
        broken = served & adv_wrong[idx] & (~is_flagged(adv_score[idx], t) | kept[idx])
        n_served = int(served.sum())
        sr = broken.sum() / n_served if n_served else np.nan
        return float((served & ~broken).mean()), float(sr), float(is_flagged(held[hidx], t).mean())

    rng = np.random.default_rng(seed)
    t0 = calibrate_threshold(cal, float(fpr))
    point = rates(t0, np.arange(n), np.arange(held.size))
    draws = np.empty((int(n_resamples), 4))
    for b in range(int(n_resamples)):
        t = calibrate_threshold(rng.choice(cal, cal.size), float(fpr))
        draws[b, :3] = rates(t, rng.integers(0, n, n), rng.integers(0, held.size, held.size))
        draws[b, 3] = t
    a = (1.0 - level) / 2
    out: dict[str, Any] = {}
    for k, (name, value) in enumerate(zip(("robust_accuracy", "sr", "realised_fpr", "threshold"), (*point, t0))):
        lo, hi = np.nanquantile(draws[:, k], [a, 1 - a])
        out[name] = {"rate": float(value), "lo": float(lo), "hi": float(hi)}
    out["n_resamples"] = int(n_resamples)
    return out
