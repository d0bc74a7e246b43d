"""The paper's confidence and non-ME metrics as detectors with calibrated thresholds (Pang et al., Section 3.1)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from rce_art.detectors.base import ScoreDetector
from rce_art.metrics import confidence_log_odds, non_me

__all__ = ["ConfidenceDetector", "NonMEDetector"]


class _LogitMetricDetector(ScoreDetector):
    """A detector whose score is a function of the logits; only the threshold is fitted."""


    def __init__(self, classifier: Any, fpr: float = 0.05, batch_size: int = 256, verbose: bool = False) -> None:
        super().__init__(classifier, layer=None, fpr=fpr, batch_size=batch_size, verbose=verbose)
        self._check_params()
        self._bind()

    # fit: the base template. Nothing is learned from data: the threshold is calibrated on ``x_calibration`` if given,
    # else on ``x`` itself (pass held-out clean inputs, not the model's training data, for an honest false-positive
    # rate); labels are optional (with them, a raw, unreversed RCE network is refused).
    fit_needs_labels = False

    def _fit_split(self, x: np.ndarray, y: np.ndarray | None, hold_out: bool) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(x.shape[0]), np.arange(x.shape[0])

    def _fit_state(self, x: np.ndarray, y: np.ndarray | None, fit_idx: np.ndarray, batch_size: int | None,
                   kwargs: dict[str, Any]) -> None:
        """Nothing to learn."""

    def _fit_provenance(self, x: np.ndarray, fit_idx: np.ndarray, given: bool) -> dict[str, Any]:
        return {"n_fit": int(x.shape[0]), "n_calibration": int(self.calibration_scores_.numel()),
                "calibration": "x_calibration" if given else "fit inputs"}

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        meta, tensors = super()._fitted_state()
        meta["nb_classes_"] = getattr(self, "nb_classes_", None)
        return meta, tensors

    def _restore_state(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        self.nb_classes_ = meta["nb_classes_"]
        super()._restore_state(meta, tensors)

    def calibrate(self, x: Any, fpr: float | None = None, batch_size: int | None = None) -> _LogitMetricDetector:
        self.threshold_ = float("-inf")  # scoring needs "fitted"; the threshold is set just below
        return super().calibrate(x, fpr, batch_size)  # type: ignore[return-value]


class ConfidenceDetector(_LogitMetricDetector):
    """Flag inputs of low confidence (Pang et al., Section 3.1); score: the log-odds of the confidence.

    ``confidence_log_odds`` ranks inputs exactly as the top softmax probability but without float32 ties.

    Args:
        classifier: ART ``PyTorchClassifier`` or ``nn.Module`` (ordinary logits).
        fpr: Target false-positive rate.
        batch_size: Inputs per forward pass.
        verbose: Progress bar.
    """

    format_tag = "rce_art.ConfidenceDetector/1"
    report_key = "confidence_log_odds"

    def score_features(self, logits: Tensor, features: Tensor) -> Tensor:
        return confidence_log_odds(logits)


class NonMEDetector(_LogitMetricDetector):
    """Flag inputs of low non-maximal entropy (Pang et al., eq. 1); the detector RCE is designed for.

    Args:
        classifier: ART ``PyTorchClassifier`` or ``nn.Module`` (ordinary logits; for RCE the reversed ones).
        fpr: Target false-positive rate.
        batch_size: Inputs per forward pass.
        verbose: Progress bar.
    """

    format_tag = "rce_art.NonMEDetector/1"
    report_key = "non_me"

    def score_features(self, logits: Tensor, features: Tensor) -> Tensor:
        return non_me(logits)

