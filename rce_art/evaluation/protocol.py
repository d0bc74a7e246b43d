"""The paper's detection protocol (Pang et al. 2018, Sections 4.3 and Table 2).

Only pairs where the clean input is classified correctly *and* its adversarial
counterpart is misclassified are scored. Each metric scores both members of a pair
(higher = more normal) and the ROC-AUC of telling them apart is reported. Confidence is
ranked by its log-odds ([`confidence_log_odds`][rce_art.metrics.confidence_log_odds]), which orders inputs
as the confidence does but never ties where float32 rounds the confidence to 1.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rce_art._validation import materialise, to_numpy
from rce_art.evaluation.paired import detection_auc, distortion, kept_pairs, tpr_at_fpr
from rce_art.evaluation.side_by_side import evaluate_detectors
from rce_art.metrics import confidence, confidence_log_odds, non_me

__all__ = [
    "METRICS",
    "RANK_BY",
    "detection_auc",
    "distortion",
    "evaluate_attack",
    "example_scores",
    "kept_pairs",
    "metric_scores",
    "report_from_scores",
    "tpr_at_fpr",
]

METRICS = ("confidence", "non_me", "kdensity")
"""The paper's three metrics, reported by [`evaluate_attack`][]."""
RANK_BY = {"confidence": "confidence_log_odds", "non_me": "non_me", "kdensity": "kdensity"}
"""The score each metric is ranked by for AUC and TPR: the same ordering, without float32 ties."""


def metric_scores(detector: Any, x: Any, batch_size: int | None = None) -> dict[str, np.ndarray]:
    """Confidence, non-ME and log K-density of inputs from one forward pass (higher = more normal).

    Args:
        detector: A fitted [`KDensityDetector`][rce_art.detectors.KDensityDetector].
        x: Inputs ``(N, *input_shape)``.

    Returns:
        Dict with ``"confidence"`` (in ``[0, 1]``), ``"confidence_log_odds"`` (its tie-free ranking
        equivalent), ``"non_me"``, ``"kdensity"`` and ``"predicted_class"`` arrays ``(N,)``.
    """
    logits, feats = detector.extract(x, batch_size)
    pred = logits.argmax(1)
    with torch.no_grad():
        kd = detector.log_density_features(feats, pred)
    return {
        "confidence": to_numpy(confidence(logits)).astype(np.float64),
        "confidence_log_odds": to_numpy(confidence_log_odds(logits.double())).astype(np.float64),
        "non_me": to_numpy(non_me(logits)).astype(np.float64),
        "kdensity": to_numpy(kd).astype(np.float64),
        "predicted_class": to_numpy(pred),
    }


def evaluate_attack(
    detector: Any,
    x: np.ndarray,
    x_adv: np.ndarray,
    y: np.ndarray,
    clip_values: tuple[float, float],
    fpr: float = 0.05,
    detectors: Mapping[str, Any] | None = None,
    **labels: Any,
) -> dict[str, Any]:
    """Score one attack under the paper's protocol.

    Args:
        detector: A fitted K-density detector on the attacked model.
        x: Clean inputs ``(N, ...)``; ``x_adv``: their adversarial counterparts; ``y``: true labels ``(N,)``.
        clip_values: Pixel range (for the [0, 255] distortion).
        fpr: False-positive rate for the TPR column.
        detectors: More fitted detectors of the family on the same model, by name: each adds
            ``auc_<name>``, ``tpr_<name>``, ``acc_nadv_<name>`` and ``acc_com_<name>``
            ([`evaluate_detectors`][rce_art.evaluation.evaluate_detectors]).
        **labels: Extra fields copied into the record (e.g. ``attack="FGSM"``, ``model="RCE"``).

    Returns:
        A record: ``n``, ``success_rate`` (adversarial misclassified among clean-correct),
        ``n_pairs``, ``distortion`` (mean over kept pairs), and ``auc_<metric>`` and
        ``tpr_<metric>`` for each of [`METRICS`][] (ranked by `RANK_BY`).
    """
    record = report_from_scores(example_scores(detector, x, x_adv, y, clip_values), fpr, **labels)
    if detectors:
        for r in evaluate_detectors(detectors, x, x_adv, y, clip_values, fpr):
            record.update({f"{k}_{r['detector']}": r[k] for k in ("auc", "tpr", "acc_nadv", "acc_com")})
    return record


def example_scores(detector: Any, x: np.ndarray, x_adv: np.ndarray, y: np.ndarray,
                   clip_values: tuple[float, float]) -> dict[str, np.ndarray]:
    """The per-example half of [`evaluate_attack`][]: everything its record is computed from.

    Per-example results can be computed on shards of the examples (processes, jobs), concatenated in
    order and handed to [`report_from_scores`][], which then gives the record of the whole run.

    Args:
        detector: A fitted K-density detector on the attacked model.
        x: Clean inputs ``(N, ...)``, or a ``DataLoader`` / ``Dataset`` yielding ``(x, y)``.
        x_adv: Their adversarial counterparts, same shape (an array, or a loader in the same order).
        y: True labels ``(N,)`` (``None``: the labels of ``x``'s items).
        clip_values: Pixel range (for the [0, 255] distortion).

    Returns:
        Arrays of length ``N``: ``y``, ``distortion``, and ``clean_<s>`` / ``adv_<s>`` for each ranking
        score ``s`` of `RANK_BY` and for ``predicted_class``.
    """
    x, found = materialise(x, "x")  # arrays, or a DataLoader / Dataset (its labels when y is None)
    x_adv = materialise(x_adv, "x_adv")[0]
    y = np.asarray(found if y is None else y).ravel()
    keys = (*sorted(set(RANK_BY.values())), "predicted_class")
    if len(y) == 0:
        return {"y": y.astype(np.int64), "distortion": np.zeros(0),
                **{f"{w}_{k}": np.zeros(0, np.int64 if k == "predicted_class" else np.float64)
                   for w in ("clean", "adv") for k in keys}}
    clean, adv = metric_scores(detector, x), metric_scores(detector, x_adv)
    out = {"y": y.astype(np.int64), "distortion": distortion(np.asarray(x), np.asarray(x_adv), clip_values)}
    for k in keys:
        out[f"clean_{k}"], out[f"adv_{k}"] = clean[k], adv[k]
    return out


def report_from_scores(scores: Mapping[str, np.ndarray], fpr: float = 0.05, **labels: Any) -> dict[str, Any]:
    """The record of [`evaluate_attack`][] from the per-example results of [`example_scores`][].

    Args:
        scores: Output of [`example_scores`][] (possibly concatenated over shards, in example order).
        fpr: False-positive rate for the TPR columns.
        **labels: Extra fields copied into the record.

    Returns:
        The record (see [`evaluate_attack`][]).
    """
    y = np.asarray(scores["y"])
    keep = kept_pairs(y, scores["clean_predicted_class"], scores["adv_predicted_class"])
    correct = scores["clean_predicted_class"] == y
    record: dict[str, Any] = dict(labels)
    record.update(
        n=int(y.size),
        success_rate=float(keep.sum() / max(correct.sum(), 1)),
        n_pairs=int(keep.sum()),
        distortion=float(scores["distortion"][keep].mean()) if keep.any() else float("nan"),
    )
    for m in METRICS:
        r = RANK_BY[m]
        record[f"auc_{m}"] = detection_auc(scores[f"clean_{r}"][keep], scores[f"adv_{r}"][keep])
        record[f"tpr_{m}"] = tpr_at_fpr(scores[f"clean_{r}"][keep], scores[f"adv_{r}"][keep], fpr)
    return record
