"""Detectors of adversarial examples in ART's ``EvasionDetector`` form, on one shared contract.

Every detector scores inputs with higher = more normal and flags scores below a threshold calibrated on
held-out clean data ([`ScoreDetector`][]). Detectors that combine several characteristics with a
logistic regression ([`CombinedDetector`][]) take adversarial examples explicitly at ``fit``.
"""

from rce_art.detectors.base import ScoreDetector
from rce_art.detectors.calibration import calibrate_threshold, is_flagged
from rce_art.detectors.characteristics import CombinedDetector
from rce_art.detectors.combiner import LogisticCombiner, is_sparse_attack, matched_flip_noise, matched_gaussian_noise
from rce_art.detectors.er import ERDetector
from rce_art.detectors.kdbu import KDBUDetector
from rce_art.detectors.kdensity import KDensityDetector
from rce_art.detectors.kernel import (
    PAPER_BANDWIDTHS,
    KernelBank,
    class_log_kdensity,
    log_kdensity,
    loo_log_kdensity,
    select_bandwidth,
)
from rce_art.detectors.layers import LayerFeatures, leaf_layers
from rce_art.detectors.lid import LIDDetector, lid_mle
from rce_art.detectors.loading import load_detector
from rce_art.detectors.logit_metrics import ConfidenceDetector, NonMEDetector
from rce_art.detectors.mahalanobis import MahalanobisDetector, class_gaussians, mahalanobis_score
from rce_art.detectors.uncertainty import BayesianUncertaintyDetector, dropout_modules, mc_dropout_uncertainty

__all__ = [
    "PAPER_BANDWIDTHS",
    "BayesianUncertaintyDetector",
    "CombinedDetector",
    "ConfidenceDetector",
    "ERDetector",
    "KDBUDetector",
    "KDensityDetector",
    "KernelBank",
    "LIDDetector",
    "LayerFeatures",
    "LogisticCombiner",
    "MahalanobisDetector",
    "NonMEDetector",
    "ScoreDetector",
    "calibrate_threshold",
    "class_gaussians",
    "class_log_kdensity",
    "dropout_modules",
    "is_flagged",
    "is_sparse_attack",
    "leaf_layers",
    "lid_mle",
    "load_detector",
    "log_kdensity",
    "loo_log_kdensity",
    "mahalanobis_score",
    "matched_flip_noise",
    "matched_gaussian_noise",
    "mc_dropout_uncertainty",
    "select_bandwidth",
]
