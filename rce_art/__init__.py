"""rce-art: robust detection of adversarial examples (RCE training + K-density), as an ART plugin."""

from typing import Any

from rce_art import distributed
from rce_art.adapters import PAPER_ATTACKS, STANDARD_ENSEMBLE, build_adaptive_attack, build_attack, standard_ensemble
from rce_art.attacks import (
    CarliniWagnerWB,
    CarliniWagnerWBART,
    CWResult,
    DetectorAsClass,
    DetectorPGD,
    DetectorPGDART,
    RayS,
    UniformNoise,
)
from rce_art.data import Dataset, load_dataset
from rce_art.detectors import (
    PAPER_BANDWIDTHS,
    BayesianUncertaintyDetector,
    ConfidenceDetector,
    ERDetector,
    KDBUDetector,
    KDensityDetector,
    LIDDetector,
    MahalanobisDetector,
    NonMEDetector,
    ScoreDetector,
    calibrate_threshold,
    load_detector,
)
from rce_art.evaluation import (
    WorstCaseEnsemble,
    WorstCaseResult,
    adaptive_report,
    cw_wb_sanity,
    detection_auc,
    distortion,
    evaluate_attack,
    evaluate_detectors,
    example_scores,
    kept_pairs,
    load_shards,
    markdown_table,
    metric_scores,
    report_from_scores,
    save_shard,
    sharded_example_scores,
    tpr_at_fpr,
    write_records,
)
from rce_art.exceptions import CalibrationWarning, GradientMaskingWarning, NotFittedError
from rce_art.losses import (
    ComposedObjective,
    ReduceVarianceLoss,
    ReverseCrossEntropyLoss,
    SiameseCosineLoss,
    reduce_variance_loss,
    reverse_cross_entropy,
    siamese_cosine_loss,
)
from rce_art.metrics import confidence, confidence_log_odds, non_me, wilson_interval
from rce_art.models import (
    Critic,
    ERClassifier,
    FeatureTap,
    PreActResNet,
    ReverseLogits,
    SmallCNN,
    make_art_classifier,
    resnet32,
    resnet56,
)
from rce_art.robustness import EvaluationReport, evaluate
from rce_art.training import CETrainer, ERTrainer, ObjectiveTrainer, PDMTrainer, RCETrainer, TorchTrainer, train_model

__version__ = "0.6.0"

__all__ = [
    "PAPER_ATTACKS",
    "PAPER_BANDWIDTHS",
    "STANDARD_ENSEMBLE",
    "BayesianUncertaintyDetector",
    "CETrainer",
    "CWResult",
    "CalibrationWarning",
    "CarliniWagnerWB",
    "CarliniWagnerWBART",
    "CarliniWagnerWBTorchattacks",
    "ComposedObjective",
    "ConfidenceDetector",
    "Critic",
    "Dataset",
    "DetectorAsClass",
    "DetectorPGD",
    "DetectorPGDART",
    "DetectorPGDTorchattacks",
    "ERClassifier",
    "ERDetector",
    "ERTrainer",
    "EvaluationReport",
    "FeatureTap",
    "GradientMaskingWarning",
    "KDBUDetector",
    "KDensityDetector",
    "LIDDetector",
    "MahalanobisDetector",
    "NonMEDetector",
    "NotFittedError",
    "ObjectiveTrainer",
    "PDMTrainer",
    "PreActResNet",
    "RCETrainer",
    "RayS",
    "ReduceVarianceLoss",
    "ReverseCrossEntropyLoss",
    "ReverseLogits",
    "ScoreDetector",
    "SiameseCosineLoss",
    "SmallCNN",
    "TorchTrainer",
    "UniformNoise",
    "WorstCaseEnsemble",
    "WorstCaseResult",
    "__version__",
    "adaptive_report",
    "build_adaptive_attack",
    "build_attack",
    "calibrate_threshold",
    "confidence",
    "confidence_log_odds",
    "cw_wb_sanity",
    "detection_auc",
    "distortion",
    "distributed",
    "evaluate",
    "evaluate_attack",
    "evaluate_detectors",
    "example_scores",
    "kept_pairs",
    "load_dataset",
    "load_detector",
    "load_shards",
    "make_art_classifier",
    "markdown_table",
    "metric_scores",
    "non_me",
    "reduce_variance_loss",
    "report_from_scores",
    "resnet32",
    "resnet56",
    "reverse_cross_entropy",
    "save_shard",
    "sharded_example_scores",
    "siamese_cosine_loss",
    "standard_ensemble",
    "tpr_at_fpr",
    "train_model",
    "wilson_interval",
    "write_records",
]


def __getattr__(name: str) -> Any:
    # the torchattacks form needs the optional extra: imported on first use
    if name in ("CarliniWagnerWBTorchattacks", "DetectorPGDTorchattacks"):
        from rce_art import attacks

        return getattr(attacks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
