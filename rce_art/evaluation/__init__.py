"""Evaluation under the paper's protocol."""

from rce_art.evaluation.binarization import BinarizationResult, binarization_test
from rce_art.evaluation.binarized_system import BinarizedSystem
from rce_art.evaluation.bootstrap import BOOTSTRAP_RESAMPLES, bootstrap_operating_point
from rce_art.evaluation.bounds import tramer_bound
from rce_art.evaluation.members import CWWBMember, DetectorPGDMember, EnsembleAttack, RaySMember
from rce_art.evaluation.observer import SuccessObserver
from rce_art.evaluation.protocol import (
    METRICS,
    detection_auc,
    distortion,
    evaluate_attack,
    example_scores,
    kept_pairs,
    metric_scores,
    report_from_scores,
    tpr_at_fpr,
)
from rce_art.evaluation.rates import (
    adaptive_report,
    attack_failure_rate,
    operating_point_rates,
    robust_accuracy_with_detection,
    robust_accuracy_with_rejection,
    served_success_rate,
    success_at_fpr,
)
from rce_art.evaluation.sanity import cw_wb_sanity, detector_pgd_sanity
from rce_art.evaluation.sharded import load_shards, save_shard, sharded_example_scores
from rce_art.evaluation.side_by_side import acc_criteria, evaluate_detectors
from rce_art.evaluation.substitution import nearest_substitutes, trivial_substitutes
from rce_art.evaluation.tables import markdown_table, write_records
from rce_art.evaluation.worst_case import WorstCaseEnsemble, WorstCaseResult, count_network_passes

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "METRICS",
    "BinarizationResult",
    "BinarizedSystem",
    "CWWBMember",
    "DetectorPGDMember",
    "EnsembleAttack",
    "RaySMember",
    "SuccessObserver",
    "WorstCaseEnsemble",
    "WorstCaseResult",
    "acc_criteria",
    "adaptive_report",
    "attack_failure_rate",
    "binarization_test",
    "bootstrap_operating_point",
    "count_network_passes",
    "cw_wb_sanity",
    "detection_auc",
    "detector_pgd_sanity",
    "distortion",
    "evaluate_attack",
    "evaluate_detectors",
    "example_scores",
    "kept_pairs",
    "load_shards",
    "markdown_table",
    "metric_scores",
    "nearest_substitutes",
    "operating_point_rates",
    "report_from_scores",
    "robust_accuracy_with_detection",
    "robust_accuracy_with_rejection",
    "save_shard",
    "served_success_rate",
    "sharded_example_scores",
    "success_at_fpr",
    "tpr_at_fpr",
    "tramer_bound",
    "trivial_substitutes",
    "write_records",
]
