"""Detectors of adversarial examples in ART's ``EvasionDetector`` form."""

from rce_art.detectors.calibration import calibrate_threshold
from rce_art.detectors.kdensity import KDensityDetector
from rce_art.detectors.kernel import PAPER_BANDWIDTHS, class_log_kdensity, log_kdensity, select_bandwidth

__all__ = [
    "PAPER_BANDWIDTHS",
    "KDensityDetector",
    "calibrate_threshold",
    "class_log_kdensity",
    "log_kdensity",
    "select_bandwidth",
]
