"""rce-art: robust detection of adversarial examples (RCE training + a family of detectors), as an ART plugin.

The top level holds the user's path: data, models, trainers, detectors, attacks and [`evaluate`][rce_art.evaluate].
Everything else lives in its subpackage (``rce_art.losses``, ``rce_art.metrics``, ``rce_art.evaluation`` for the
paper protocol and the rates, ``rce_art.adapters`` for the toolkits, ``rce_art.report`` for the one-call
report's parts). Names that 0.6 exported here and 0.7 moved keep working until 0.8, with a ``DeprecationWarning``
naming their new home.
"""

from typing import Any

from rce_art import distributed
from rce_art._deprecation import install_renamed_package, moved_attribute
from rce_art.adapters import OODDetector, build_attack
from rce_art.attacks import (
    CarliniWagnerWB,
    CarliniWagnerWBART,
    DetectorAsClass,
    DetectorPGD,
    DetectorPGDART,
    RayS,
    UniformNoise,
)
from rce_art.data import DatasetSplits, load_dataset
from rce_art.detectors import (
    BayesianUncertaintyDetector,
    ConfidenceDetector,
    ERDetector,
    KDBUDetector,
    KDensityDetector,
    LIDDetector,
    MahalanobisDetector,
    NonMEDetector,
    ScoreDetector,
    load_detector,
)
from rce_art.evaluation import WorstCaseEnsemble
from rce_art.exceptions import CalibrationWarning, GradientMaskingWarning, InvalidParameterError, NotFittedError
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
from rce_art.report import EvaluationReport, evaluate
from rce_art.training import CETrainer, ERTrainer, ObjectiveTrainer, PDMTrainer, RCETrainer, TorchTrainer, train_model

__version__ = "0.7.0"

__all__ = [
    "BayesianUncertaintyDetector",
    "CETrainer",
    "CalibrationWarning",
    "CarliniWagnerWB",
    "CarliniWagnerWBART",
    "CarliniWagnerWBTorchattacks",
    "ConfidenceDetector",
    "Critic",
    "DatasetSplits",
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
    "InvalidParameterError",
    "KDBUDetector",
    "KDensityDetector",
    "LIDDetector",
    "MahalanobisDetector",
    "NonMEDetector",
    "NotFittedError",
    "OODDetector",
    "ObjectiveTrainer",
    "PDMTrainer",
    "PreActResNet",
    "RCETrainer",
    "RayS",
    "ReverseLogits",
    "ScoreDetector",
    "SmallCNN",
    "TorchTrainer",
    "UniformNoise",
    "WorstCaseEnsemble",
    "__version__",
    "build_attack",
    "distributed",
    "evaluate",
    "load_dataset",
    "load_detector",
    "make_art_classifier",
    "resnet32",
    "resnet56",
    "train_model",
]

# 0.6's package rce_art.robustness is rce_art.report (its module report is rce_art.report.model): old imports work
install_renamed_package("rce_art.robustness", "rce_art.report", {"report": "model"})

#: 0.6's top-level names that moved to their subpackage in 0.7 (working, with a DeprecationWarning, until 0.8).
MOVED = {
    "Dataset": "rce_art.data:DatasetSplits",
    "PAPER_ATTACKS": "rce_art.adapters:PAPER_ATTACKS",
    "STANDARD_ENSEMBLE": "rce_art.adapters:STANDARD_ENSEMBLE",
    "build_adaptive_attack": "rce_art.adapters:build_adaptive_attack",
    "standard_ensemble": "rce_art.adapters:standard_ensemble",
    "CWResult": "rce_art.attacks:CWResult",
    "PAPER_BANDWIDTHS": "rce_art.detectors:PAPER_BANDWIDTHS",
    "calibrate_threshold": "rce_art.detectors:calibrate_threshold",
    "WorstCaseResult": "rce_art.evaluation:WorstCaseResult",
    **{name: f"rce_art.evaluation:{name}" for name in (
        "adaptive_report", "cw_wb_sanity", "detection_auc", "distortion", "evaluate_attack", "evaluate_detectors",
        "example_scores", "kept_pairs", "load_shards", "markdown_table", "metric_scores", "report_from_scores",
        "save_shard", "sharded_example_scores", "tpr_at_fpr", "write_records")},
    **{name: f"rce_art.losses:{name}" for name in (
        "ComposedObjective", "ReduceVarianceLoss", "ReverseCrossEntropyLoss", "SiameseCosineLoss",
        "reduce_variance_loss", "reverse_cross_entropy", "siamese_cosine_loss")},
    **{name: f"rce_art.metrics:{name}" for name in ("confidence", "confidence_log_odds", "non_me", "wilson_interval")},
}


def __getattr__(name: str) -> Any:
    # the torchattacks forms need the optional extra: imported on first use
    if name in ("CarliniWagnerWBTorchattacks", "DetectorPGDTorchattacks"):
        from rce_art import attacks

        return getattr(attacks, name)
    return moved_attribute(__name__, name, MOVED)


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))
