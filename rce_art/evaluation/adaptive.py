"""Metrics of adaptive attacks at a fixed budget: success at a fixed false-positive rate, robust accuracy with rejection."""

from __future__ import annotations

from typing import Any

import numpy as np

from rce_art.detectors.calibration import calibrate_threshold
from rce_art.evaluation.protocol import detection_auc

__all__ = ["adaptive_report", "robust_accuracy_with_rejection", "success_at_fpr"]


def success_at_fpr(clean_scores: np.ndarray, adv_scores: np.ndarray, goal_met: np.ndarray, fpr: float) -> float:
    """SR@fpr: fraction of attacked inputs that meet the attack's goal AND are not flagged.

    The threshold is fixed on held-out clean scores so that a fraction ``fpr`` of them is flagged
    ([`calibrate_threshold`][rce_art.detectors.calibrate_threshold]; higher score = more normal) — never on attacked inputs.
    SR@5 and SR@50 (Bryniarski et al. 2022) use ``fpr = 0.05`` and ``0.5``.

    Args:
        clean_scores: Scores of held-out clean inputs ``(M,)``.
        adv_scores: Scores of the attacked inputs ``(N,)``.
        goal_met: ``(N,)`` booleans: misclassified (untargeted) or target reached.
        fpr: False-positive rate fixing the threshold, in ``[0, 1)``.

    Returns:
        The success rate in ``[0, 1]``.
    """
    t = calibrate_threshold(np.asarray(clean_scores, np.float64), fpr)
    adv, goal = np.asarray(adv_scores, np.float64).ravel(), np.asarray(goal_met, bool).ravel()
    if adv.shape != goal.shape:
        raise ValueError(f"adv_scores and goal_met must have one shape, got {adv.shape} and {goal.shape}")
    return float((goal & (adv >= t)).mean())


def robust_accuracy_with_rejection(pred_adv: np.ndarray, y: np.ndarray, flagged: np.ndarray) -> float:
    """Fraction of attacked inputs the system handles: classified correctly or flagged (rejected)."""
    return float(((np.asarray(pred_adv) == np.asarray(y)) | np.asarray(flagged, bool)).mean())


def adaptive_report(clean_scores: np.ndarray, x_scores: np.ndarray, adv_scores: np.ndarray, pred_adv: np.ndarray,
                    y: np.ndarray, goal_met: np.ndarray, linf: np.ndarray, l2: np.ndarray,
                    fprs: tuple[float, ...] = (0.05, 0.5), **labels: Any) -> dict[str, Any]:
    """One record of an adaptive attack on one detector.

    Args:
        clean_scores: Scores of held-out clean inputs (threshold calibration).
        x_scores: Scores of the clean versions of the attacked inputs (for the AUC).
        adv_scores: Scores of the attacked inputs; pred_adv: their predicted classes; y: true labels.
        goal_met: Misclassified / target reached per attacked input.
        linf: Per-input L-inf distortion; l2: per-input L2 distortion.
        fprs: False-positive rates of the reported success rates.
        **labels: Extra fields of the record.

    Returns:
        ``SR@<100 fpr>`` and ``robust_acc@<100 fpr>`` per rate, ``auc`` (clean vs attacked, all inputs),
        ``misclassified``, ``mean_linf``, ``mean_l2``.
    """
    rec: dict[str, Any] = dict(labels)
    for f in fprs:
        t = calibrate_threshold(np.asarray(clean_scores, np.float64), f)
        tag = f"{round(100 * f)}"
        rec[f"SR@{tag}"] = success_at_fpr(clean_scores, adv_scores, goal_met, f)
        rec[f"robust_acc@{tag}"] = robust_accuracy_with_rejection(pred_adv, y, np.asarray(adv_scores) < t)
    rec.update(auc=detection_auc(x_scores, adv_scores), misclassified=float(np.mean(goal_met)),
               mean_linf=float(np.mean(linf)), mean_l2=float(np.mean(l2)))
    return rec
