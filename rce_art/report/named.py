"""Detectors by name for [`evaluate`][rce_art.report.evaluate] and the ``rce-art`` command: the settings used to
fit them (library defaults; printed in the report), and their fitted files reused on resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rce_art.adapters.ood_named import OOD_PREFIX, build_ood_detector
from rce_art.detectors import (
    BayesianUncertaintyDetector,
    ConfidenceDetector,
    KDBUDetector,
    KDensityDetector,
    LIDDetector,
    MahalanobisDetector,
    NonMEDetector,
    ScoreDetector,
    load_detector,
)

__all__ = ["DETECTOR_NAMES", "OOD_PREFIX", "fit_named_detector", "is_detector_name", "save_atomically"]

_FACTORIES = {
    "kd": lambda clf, seed: KDensityDetector(clf, seed=seed),
    "bu": lambda clf, seed: BayesianUncertaintyDetector(clf, seed=seed),
    "kdbu": lambda clf, seed: KDBUDetector(clf, seed=seed),
    "lid": lambda clf, seed: LIDDetector(clf, seed=seed),
    "mahalanobis": lambda clf, seed: MahalanobisDetector(clf, seed=seed),
    "confidence": lambda clf, seed: ConfidenceDetector(clf),
    "non-me": lambda clf, seed: NonMEDetector(clf),
}
DETECTOR_NAMES: tuple[str, ...] = tuple(_FACTORIES)
"""Detector names: K-density, BU (needs dropout in the model), KD+BU, LID, Mahalanobis, confidence, non-ME; and
pytorch-ood's detectors as ``"ood:<alias or class>"`` (see [`build_ood_detector`][rce_art.adapters.build_ood_detector])."""
_COMBINED = {"kdbu", "lid"}
FGSM_EPS_FRACTION = 0.1
"""Combiner detectors (KD+BU, LID) are fitted on FGSM examples of 200 fit inputs at this fraction of the pixel range
(ours; their logistic regression needs adversarial examples, Ma et al. 2018)."""


def is_detector_name(name: str) -> bool:
    """Whether ``name`` names a detector: one of `DETECTOR_NAMES`, or ``"ood:..."`` (checked when it is built)."""
    return name in _FACTORIES or name.startswith(OOD_PREFIX)


def fit_named_detector(name: str, classifier: Any, x_fit: Any, y_fit: Any, x_calibration: np.ndarray, seed: int,
                       path: Path | None) -> ScoreDetector:
    """The detector ``name`` fitted on ``(x_fit, y_fit)`` with its threshold on ``x_calibration``, or loaded from
    ``path`` when a previous run saved it there (checked against the classifier's weights; see [`save_atomically`][]).

    Raises:
        ValueError: On an unknown name, or what the detector's own ``fit`` raises (e.g. BU on a model without
            dropout).
    """
    if not is_detector_name(name):
        raise ValueError(f"unknown detector name {name!r}; choose from {DETECTOR_NAMES} or {OOD_PREFIX}<name>")
    if path is not None and path.exists():
        return load_detector(path, classifier, strict=True)
    if name.startswith(OOD_PREFIX):
        return build_ood_detector(name, classifier, x_fit, seed).fit(x_fit, y_fit, x_calibration=x_calibration)
    det = _FACTORIES[name](classifier, seed)
    kw: dict[str, Any] = {}
    if name in _COMBINED:
        from art.attacks.evasion import FastGradientMethod

        lo, hi = classifier.clip_values
        x_clean = np.asarray(x_fit, np.float32)[:200]
        eps = FGSM_EPS_FRACTION * float(np.max(hi) - np.min(lo))
        kw = {"x_clean": x_clean, "x_adv": FastGradientMethod(classifier, eps=eps).generate(x_clean), "attack": "fgsm"}
    return det.fit(x_fit, y_fit, x_calibration=x_calibration, **kw)


def save_atomically(det: ScoreDetector, path: Path) -> None:
    """Save a fitted detector so that a killed process leaves the whole file or none (a temporary file of its own,
    then renamed: concurrent writers do not race)."""
    from rce_art.evaluation.store import atomic_save

    atomic_save(path, det.save)
