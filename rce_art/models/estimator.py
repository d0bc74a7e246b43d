"""Estimators: build ART ``PyTorchClassifier`` objects and see through them to the torch model.

Every component that takes "a classifier" (trainers, detectors, attacks) accepts an ART
``PyTorchClassifier`` or a plain ``nn.Module`` and looks at it through a [`TorchView`][]:
the torch module, its device, clip values, input shape, and the estimator's preprocessing as a
differentiable torch function, so that training, detection and attacks all see inputs exactly as
ART's ``predict`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rce_art.models.features import logits_and_features

__all__ = ["Preprocessed", "TorchView", "make_art_classifier", "resolve_model", "with_model"]


def make_art_classifier(
    model: nn.Module,
    input_shape: tuple[int, ...],
    nb_classes: int,
    clip_values: tuple[float, float],
    *,
    device_type: str = "gpu",
    **kwargs: Any,
) -> Any:
    """Wrap a torch classifier in ART's ``PyTorchClassifier`` with a cross-entropy loss.

    Args:
        model: Module mapping ``(N, *input_shape)`` to ordinary logits ``(N, nb_classes)``
            (for an RCE-trained network, wrap it in [`rce_art.models.ReverseLogits`][rce_art.models.ReverseLogits] first).
        input_shape: Shape of one input, e.g. ``(1, 8, 8)``.
        nb_classes: Number of classes.
        clip_values: ``(min, max)`` pixel range, handed to every ART attack.
        device_type: ``"gpu"`` (ART's default: the first CUDA device when one is available, else the CPU) or
            ``"cpu"``.
        **kwargs: Passed to ``PyTorchClassifier`` (e.g. ``preprocessing=(mean, std)``).

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
    """A new ``PyTorchClassifier`` like ``classifier`` around ``model``.

    Shape, classes, clip values, device, channel order, preprocessing (the estimator's own
    preprocessor object, whatever its kind) and pre-/post-processing defences are carried over.
    """
    return make_art_classifier(
        model,
        classifier.input_shape,
        classifier.nb_classes,
        classifier.clip_values,
        device_type="gpu" if classifier.device.type == "cuda" else "cpu",
        preprocessing=classifier.preprocessing,
        preprocessing_defences=classifier.preprocessing_defences,
        postprocessing_defences=classifier.postprocessing_defences,
        channels_first=classifier.channels_first,
    )


def _is_identity_standardisation(op: Any) -> bool:
    mean, std = getattr(op, "mean", None), getattr(op, "std", None)
    kinds = ("StandardisationMeanStd", "StandardisationMeanStdPyTorch")
    if mean is None or std is None or type(op).__name__ not in kinds:
        return False
    return bool(np.all(np.asarray(mean) == 0) and np.all(np.asarray(std) == 1))


def _apply_op(op: Any, x: Tensor) -> Tensor:
    """One ART preprocessing step in torch, through its public interface."""
    from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
    from art.preprocessing.standardisation_mean_std.numpy import StandardisationMeanStd
    from art.preprocessing.standardisation_mean_std.utils import broadcastable_mean_std

    if isinstance(op, PreprocessorPyTorch):
        return op.forward(x, None)[0]
    if isinstance(op, StandardisationMeanStd):
        mean, std = broadcastable_mean_std(x, np.asarray(op.mean), np.asarray(op.std))
        mean_t = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
        return (x - mean_t) / torch.as_tensor(std, dtype=x.dtype, device=x.device)
    raise ValueError(
        f"the ART classifier's preprocessing step {type(op).__name__} is not PyTorch-native; rce-art trains, "
        "detects and attacks through the estimator's preprocessing and needs it differentiable in torch "
        "(StandardisationMeanStdPyTorch or another PreprocessorPyTorch)"
    )


@dataclass
class TorchView:
    """What rce-art needs from a classifier, whether it came as an ART estimator or a torch module.

    Attributes:
        model: The torch module producing ordinary logits from *preprocessed* inputs.
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
        """Apply the ART estimator's prediction-time preprocessing differentiably in torch (or nothing).

        The steps are the estimator's public ``preprocessing_operations`` whose ``apply_predict`` is
        set, in order (preprocessing defences, then the standardisation), exactly as ART's ``predict``
        and ART's attacks apply them. ART's default standardisation (mean 0, std 1) is the identity and
        is skipped: it would only add work to every forward pass of an attack's inner loop.

        Raises:
            ValueError: If a step is not PyTorch-native (it could not pass gradients).
        """
        if self.estimator is None:
            return x
        ops = [op for op in self.estimator.preprocessing_operations if op.apply_predict]
        for op in ops:
            if not _is_identity_standardisation(op):
                x = _apply_op(op, x)
        return x

    @property
    def has_preprocessing(self) -> bool:
        """Whether [`preprocess`][] changes inputs (an estimator with non-identity preprocessing)."""
        if self.estimator is None:
            return False
        ops = self.estimator.preprocessing_operations
        return any(op.apply_predict and not _is_identity_standardisation(op) for op in ops)


class Preprocessed(nn.Module):
    """``model(preprocess(x))`` as one module: what an ART estimator computes from raw inputs.

    Trainers train this composition, so that a network is trained on exactly the inputs ART's
    ``predict`` gives it. ``logits_and_features`` is forwarded when the model has it.

    Args:
        view: The [`TorchView`][] whose preprocessing is applied.
        model: The module to call after preprocessing (default: ``view.model``).
    """

    def __init__(self, view: TorchView, model: nn.Module | None = None) -> None:
        super().__init__()
        self.model = view.model if model is None else model
        self._preprocess = view.preprocess
        self.train(self.model.training)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self._preprocess(x))

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits, features)`` of the wrapped model on preprocessed inputs."""
        return logits_and_features(self.model, self._preprocess(x))


def resolve_model(classifier: Any) -> TorchView:
    """Return a [`TorchView`][] of an ART ``PyTorchClassifier`` or a plain ``nn.Module``.

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
        clip_t = None if clip is None else (float(np.min(clip[0])), float(np.max(clip[1])))
        return TorchView(model, classifier.device, clip_t, tuple(classifier.input_shape), classifier)
    raise TypeError(
        f"expected an ART PyTorchClassifier or a torch.nn.Module, got {type(classifier).__name__}; "
        "wrap your model with rce_art.make_art_classifier(...)"
    )
