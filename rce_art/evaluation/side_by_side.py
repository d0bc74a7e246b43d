"""Several detectors side by side on one attack, under the paired protocol, with the ER paper's criteria."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rce_art.evaluation.paired import detection_auc, distortion, kept_pairs, tpr_at_fpr

__all__ = ["acc_criteria", "evaluate_detectors"]


def acc_criteria(clean_flagged: np.ndarray, adv_flagged: np.ndarray, adv_pred: np.ndarray, y: np.ndarray) -> dict:
    """ACC-NADV and ACC-COM of a thresholded detector (ER paper, Section 4.5, Table 4).

    Over N attacked inputs and their M = N clean versions: ``ACC-NADV = n_nadv / M`` (clean inputs passed
    as natural, ``1 - FPR``) and ``ACC-COM = (n_adv + n_cla) / N`` (adversarial inputs flagged, plus those
    not flagged but still classified correctly: every attacked input the system handles correctly).

    Args:
        clean_flagged: Boolean decisions ``(N,)`` on the clean inputs.
        adv_flagged: Boolean decisions ``(N,)`` on the attacked inputs.
        adv_pred: Predicted classes of the attacked inputs ``(N,)``.
        y: True labels ``(N,)``.

    Returns:
        ``{"acc_nadv": float, "acc_com": float}``.
    """
    clean_flagged, adv_flagged = np.asarray(clean_flagged, bool), np.asarray(adv_flagged, bool)
    handled = adv_flagged | (np.asarray(adv_pred) == np.asarray(y))
    return {"acc_nadv": float((~clean_flagged).mean()), "acc_com": float(handled.mean())}


def evaluate_detectors(
    detectors: Mapping[str, Any],
    x: np.ndarray,
    x_adv: np.ndarray,
    y: np.ndarray,
    clip_values: tuple[float, float],
    fpr: float = 0.05,
    **labels: Any,
) -> list[dict[str, Any]]:
    """Score one attack with every fitted detector of ``detectors`` (name -> detector on the same model).

    AUC and TPR at ``fpr`` are over the protocol's kept pairs (clean input correct, attacked input wrong;
    Pang et al. Sec. 4.3); ACC-NADV / ACC-COM ([`acc_criteria`][]) use each detector's calibrated
    threshold over all attacked inputs. Evaluate on inputs no fit step of the detectors saw.

    Returns:
        One record per detector: ``detector``, ``n``, ``n_pairs``, ``success_rate``, ``distortion``,
        ``auc``, ``tpr``, ``acc_nadv``, ``acc_com`` and ``labels``.
    """
    y = np.asarray(y).ravel()
    records = []
    for name, det in detectors.items():
        rep_c, flag_c = det.detect(x)
        rep_a, flag_a = det.detect(x_adv)
        keep = kept_pairs(y, rep_c["predicted_class"], rep_a["predicted_class"])
        sc, sa = rep_c[det.report_key], rep_a[det.report_key]
        correct = rep_c["predicted_class"] == y
        rec: dict[str, Any] = {**labels, "detector": name, "n": int(y.size), "n_pairs": int(keep.sum()),
                               "success_rate": float(keep.sum() / max(correct.sum(), 1)),
                               "distortion": float(distortion(x[keep], x_adv[keep], clip_values).mean())
                               if keep.any() else float("nan"),
                               "auc": detection_auc(sc[keep], sa[keep]), "tpr": tpr_at_fpr(sc[keep], sa[keep], fpr)}
        rec.update(acc_criteria(flag_c, flag_a, rep_a["predicted_class"], y))
        records.append(rec)
    return records
