"""rce-art: robust detection of adversarial examples (RCE training + K-density), as an ART plugin."""

from typing import Any

from rce_art.adapters import PAPER_ATTACKS, build_attack
from rce_art.attacks import CarliniWagnerWB, CarliniWagnerWBART, CWResult, DetectorPGD, DetectorPGDART, UniformNoise
from rce_art.data import Dataset, load_dataset
from rce_art.detectors import (
    PAPER_BANDWIDTHS,
    BayesianUncertaintyDetector,
    ConfidenceDetector,
    KDBUDetector,
    KDensityDetector,
    LIDDetector,
    MahalanobisDetector,
    NonMEDetector,
    ScoreDetector,
    calibrate_threshold,
)
from rce_art.evaluation import (
    adaptive_report,
    cw_wb_sanity,
    detection_auc,
    distortion,
    evaluate_attack,
    evaluate_detectors,
    kept_pairs,
    markdown_table,
    metric_scores,
    tpr_at_fpr,
    write_records,
)
from rce_art.exceptions import NotFittedError
from rce_art.losses import (
    ComposedObjective,
    ReduceVarianceLoss,
    ReverseCrossEntropyLoss,
    SiameseCosineLoss,
    reduce_variance_loss,
    reverse_cross_entropy,
    siamese_cosine_loss,
)
from rce_art.metrics import confidence, confidence_log_odds, non_me
from rce_art.models import (
    FeatureTap,
    PreActResNet,
    ReverseLogits,
    SmallCNN,
    make_art_classifier,
    resnet32,
    resnet56,
)
from rce_art.training import CETrainer, ObjectiveTrainer, PDMTrainer, RCETrainer, TorchTrainer, train_model

__version__ = "0.2.0"

__all__ = [
    "PAPER_ATTACKS",
    "PAPER_BANDWIDTHS",
    "BayesianUncertaintyDetector",
    "CETrainer",
    "ComposedObjective",
    "ConfidenceDetector",
    "KDBUDetector",
    "LIDDetector",
    "MahalanobisDetector",
    "NonMEDetector",
    "CWResult",
    "CarliniWagnerWB",
    "CarliniWagnerWBART",
    "CarliniWagnerWBTorchattacks",
    "Dataset",
    "DetectorPGD",
    "DetectorPGDART",
    "DetectorPGDTorchattacks",
    "FeatureTap",
    "KDensityDetector",
    "NotFittedError",
    "ObjectiveTrainer",
    "PDMTrainer",
    "PreActResNet",
    "RCETrainer",
    "ReduceVarianceLoss",
    "ReverseCrossEntropyLoss",
    "ReverseLogits",
    "ScoreDetector",
    "SiameseCosineLoss",
    "SmallCNN",
    "TorchTrainer",
    "UniformNoise",
    "__version__",
    "build_attack",
    "calibrate_threshold",
    "confidence",
    "confidence_log_odds",
    "adaptive_report",
    "cw_wb_sanity",
    "detection_auc",
    "distortion",
    "evaluate_attack",
    "evaluate_detectors",
    "kept_pairs",
    "load_dataset",
    "make_art_classifier",
    "markdown_table",
    "metric_scores",
    "non_me",
    "reduce_variance_loss",
    "resnet32",
    "resnet56",
    "reverse_cross_entropy",
    "siamese_cosine_loss",
    "tpr_at_fpr",
    "train_model",
    "write_records",
]


def __getattr__(name: str) -> Any:
    # the torchattacks form needs the optional extra: imported on first use
    if name in ("CarliniWagnerWBTorchattacks", "DetectorPGDTorchattacks"):
        from rce_art import attacks

        return getattr(attacks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
