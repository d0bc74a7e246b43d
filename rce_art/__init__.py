"""rce-art: robust detection of adversarial examples (RCE training + K-density), as an ART plugin."""

from rce_art.adapters.art import make_art_classifier
from rce_art.data import Dataset, load_dataset
from rce_art.detectors import PAPER_BANDWIDTHS, KDensityDetector, calibrate_threshold
from rce_art.attacks import PAPER_ATTACKS, UniformNoise, build_attack
from rce_art.evaluation import (
    detection_auc,
    distortion,
    evaluate_attack,
    kept_pairs,
    markdown_table,
    metric_scores,
    write_records,
)
from rce_art.exceptions import NotFittedError
from rce_art.losses import (
    ReduceVarianceLoss,
    ReverseCrossEntropyLoss,
    SiameseCosineLoss,
    reduce_variance_loss,
    reverse_cross_entropy,
    siamese_cosine_loss,
)
from rce_art.metrics import confidence, non_me
from rce_art.models import FeatureTap, PreActResNet, ReverseLogits, SmallCNN, resnet32, resnet56
from rce_art.training import CETrainer, PDMTrainer, RCETrainer, train_model

__version__ = "0.1.0"

__all__ = [
    "PAPER_ATTACKS",
    "PDMTrainer",
    "PAPER_BANDWIDTHS",
    "CETrainer",
    "Dataset",
    "FeatureTap",
    "KDensityDetector",
    "NotFittedError",
    "PreActResNet",
    "RCETrainer",
    "ReduceVarianceLoss",
    "ReverseCrossEntropyLoss",
    "ReverseLogits",
    "SiameseCosineLoss",
    "SmallCNN",
    "UniformNoise",
    "__version__",
    "build_attack",
    "calibrate_threshold",
    "confidence",
    "detection_auc",
    "distortion",
    "evaluate_attack",
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
    "train_model",
    "write_records",
]
