"""Checks and label handling shared by the ART forms of rce-art's attacks (private)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from rce_art._tensors import as_input_tensor
from rce_art._validation import check_labels

__all__ = ["check_detector_on", "inputs_and_goals"]


def check_detector_on(estimator: Any, detector: Any, method: str, batch_size: Any) -> None:
    """Raise unless ``detector`` (with ``method``) is fitted on ``estimator`` and ``batch_size`` is a positive integer."""
    if not hasattr(detector, method):
        raise TypeError(f"detector must be a detector of rce_art (with {method})")
    if detector.classifier is not estimator and detector.view.model is not estimator.model:
        raise ValueError("the detector must be fitted on the attacked classifier (detector.classifier is another model)")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def inputs_and_goals(detector: Any, x: Any, y: Any, targeted: bool) -> tuple[Tensor, Any]:
    """``x`` as a validated tensor on the detector's device, and the goal labels: ``y`` (targets, required when
    ``targeted``; true labels otherwise) or the model's predictions."""
    xt = as_input_tensor(x, detector.device, detector.clip_values)
    if y is None:
        if targeted:
            raise ValueError("a targeted attack needs target labels y")
        return xt, detector.extract(xt)[0].argmax(1)
    return xt, check_labels(y, xt.shape[0], detector.nb_classes_)
