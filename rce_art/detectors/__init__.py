"""Detectors of adversarial examples in ART's ``EvasionDetector`` form, on one shared contract."""

from rce_art.detectors.base import ScoreDetector
from rce_art.detectors.calibration import calibrate_threshold
from rce_art.detectors.kdensity import KDensityDetector
from rce_art.detectors.kernel import (
    PAPER_BANDWIDTHS,
    KernelBank,
    class_log_kdensity,
    log_kdensity,
    loo_log_kdensity,
    select_bandwidth,
)

__all__ = [
    "PAPER_BANDWIDTHS",
    "KDensityDetector",
    "KernelBank",
    "ScoreDetector",
    "calibrate_threshold",
    "class_log_kdensity",
    "log_kdensity",
    "loo_log_kdensity",
    "select_bandwidth",
]
