"""ART glue: build ``PyTorchClassifier`` objects and see through them to the torch model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["TorchView", "make_art_classifier", "resolve_model", "with_model"]


def make_art_classifier(
    model: nn.Module,
    input_shape: tuple[int, ...],
    nb_classes: int,
    clip_values: tuple[float, float],
    *,
    device_type: str = "cpu",
    **kwargs: Any,
) -> Any:
    """Wrap a torch classifier in ART's ``PyTorchClassifier`` with a cross-entropy loss.

    Args:
        model: Module mapping ``(N, *input_shape)`` to ordinary logits ``(N, nb_classes)``
            (for an RCE-trained network, wrap it in :class:`rce_art.models.ReverseLogits` first).
        input_shape: Shape of one input, e.g. ``(1, 8, 8)``.
        nb_classes: Number of classes.
        clip_values: ``(min, max)`` pixel range, handed to every ART attack.
        device_type: ``"cpu"`` or ``"gpu"`` (ART's convention).
        **kwargs: Passed to ``PyTorchClassifier`` (e.g. ``preprocessing``).

    Returns:
        ``art.estimators.classification.PyTorchClassifier``.
    """
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(input_shape),
        nb_classes=int(nb_classes),
        clip_values=tuple(float(c) for c in clip_values),
        device_type=device_type,
        **kwargs,
    )


def with_model(classifier: Any, model: nn.Module) -> Any:
    """A new ``PyTorchClassifier`` like ``classifier`` (shape, classes, clip values, preprocessing) around ``model``."""
    pre = classifier.preprocessing
    preprocessing: Any = (0.0, 1.0)
    if pre is not None and hasattr(pre, "mean") and hasattr(pre, "std"):
        preprocessing = (pre.mean, pre.std)
    return make_art_classifier(
        model,
        classifier.input_shape,
        classifier.nb_classes,
        classifier.clip_values,
        device_type="gpu" if classifier.device.type == "cuda" else "cpu",
        preprocessing=preprocessing,
        preprocessing_defences=classifier.preprocessing_defences,
        postprocessing_defences=classifier.postprocessing_defences,
        channels_first=classifier.channels_first,
    )


@dataclass
class TorchView:
    """What rce-art needs from a classifier, whether it came as an ART estimator or a torch module.

    Attributes:
        model: The torch module producing ordinary logits.
        device: Device of the model's parameters.
        clip_values: Pixel range, or ``None`` if unknown.
        input_shape: Shape of one input, or ``None`` if unknown.
        estimator: The ART estimator, if one was given.
    """

    model: nn.Module
    device: torch.device
    clip_values: tuple[float, float] | None
    input_shape: tuple[int, ...] | None
    estimator: Any = None

    def preprocess(self, x: Tensor) -> Tensor:
        """Apply the ART estimator's preprocessing (differentiably, in torch), or nothing.

        ART's default standardisation (mean 0, std 1) is the identity and is skipped: it would
        only add work to every forward pass of an attack's inner loop.
        """
        if self.estimator is None or not self.estimator.preprocessing_operations:
            return x
        ops = self.estimator.preprocessing_operations
        if len(ops) == 1 and _is_identity_standardisation(ops[0]):
            return x
        if not self.estimator.all_framework_preprocessing:
            raise ValueError(
                "the ART classifier has preprocessing that is not PyTorch-native; rce-art needs differentiable "
                "preprocessing (StandardisationMeanStdPyTorch or PreprocessorPyTorch)"
            )
        x_pre, _ = self.estimator._apply_preprocessing(x, None, fit=False, no_grad=False)
        return x_pre


def _is_identity_standardisation(op: Any) -> bool:
    import numpy as np

    mean, std = getattr(op, "mean", None), getattr(op, "std", None)
    if mean is None or std is None or type(op).__name__ not in ("StandardisationMeanStd", "StandardisationMeanStdPyTorch"):
        return False
    return bool(np.all(np.asarray(mean) == 0) and np.all(np.asarray(std) == 1))


def resolve_model(classifier: Any) -> TorchView:
    """Return a :class:`TorchView` of an ART ``PyTorchClassifier`` or a plain ``nn.Module``.

    Raises:
        TypeError: If ``classifier`` is neither.
    """
    if isinstance(classifier, nn.Module):
        param = next(classifier.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        return TorchView(classifier, device, None, None, None)
    model = getattr(classifier, "model", None)
    if isinstance(model, nn.Module) and hasattr(classifier, "nb_classes"):
        clip = classifier.clip_values
        clip_t = None if clip is None else (float(clip[0]), float(clip[1]))
        return TorchView(model, classifier.device, clip_t, tuple(classifier.input_shape), classifier)
    raise TypeError(
        f"expected an ART PyTorchClassifier or a torch.nn.Module, got {type(classifier).__name__}; "
        "wrap your model with rce_art.make_art_classifier(...)"
    )
