"""Evaluation under the paper's protocol."""

from rce_art.evaluation.adaptive import adaptive_report, robust_accuracy_with_rejection, success_at_fpr
from rce_art.evaluation.detectors import acc_criteria, evaluate_detectors
from rce_art.evaluation.protocol import (
    METRICS,
    detection_auc,
    distortion,
    evaluate_attack,
    kept_pairs,
    metric_scores,
    tpr_at_fpr,
)
from rce_art.evaluation.report import markdown_table, write_records
from rce_art.evaluation.sanity import cw_wb_sanity, detector_pgd_sanity

__all__ = [
    "adaptive_report",
    "robust_accuracy_with_rejection",
    "success_at_fpr",
    "acc_criteria",
    "evaluate_detectors",
    "METRICS",
    "cw_wb_sanity",
    "detector_pgd_sanity",
    "detection_auc",
    "distortion",
    "evaluate_attack",
    "kept_pairs",
    "markdown_table",
    "metric_scores",
    "tpr_at_fpr",
    "write_records",
]
