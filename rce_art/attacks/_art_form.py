"""What the ART forms of rce-art's attacks share (private): parameters built from the core's signature, checks and
label handling."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
from art.attacks import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator
from torch import Tensor

from rce_art._signature import init_parameters, with_signature
from rce_art._tensors import as_input_tensor
from rce_art._validation import check_integer, check_labels

__all__ = ["DetectorAttackART", "check_detector_on", "inputs_and_goals"]

_P = inspect.Parameter
_LEADING = [_P("estimator", _P.POSITIONAL_OR_KEYWORD, annotation="Any"),
            _P("detector", _P.POSITIONAL_OR_KEYWORD, annotation="Any")]
_TRAILING = [_P("targeted", _P.POSITIONAL_OR_KEYWORD, default=False, annotation="bool"),
             _P("batch_size", _P.POSITIONAL_OR_KEYWORD, default=128, annotation="int"),
             _P("verbose", _P.POSITIONAL_OR_KEYWORD, default=True, annotation="bool")]


def check_detector_on(estimator: Any, detector: Any, method: str, batch_size: Any) -> None:
    """Raise unless ``detector`` (with ``method``) is fitted on ``estimator`` and ``batch_size`` is a positive integer."""
    if not hasattr(detector, method):
        raise TypeError(f"detector must be a detector of rce_art (with {method})")
    if detector.classifier is not estimator and detector.view.model is not estimator.model:
        raise ValueError("the detector must be fitted on the attacked classifier (detector.classifier is another model)")
    check_integer(batch_size, "batch_size", 1)


def inputs_and_goals(detector: Any, x: Any, y: Any, targeted: bool) -> tuple[Tensor, Any]:
    """``x`` as a validated tensor on the detector's device, and the goal labels: ``y`` (targets, required when
    ``targeted``; true labels otherwise) or the model's predictions."""
    xt = as_input_tensor(x, detector.device, detector.clip_values)
    if y is None:
        if targeted:
            raise ValueError("a targeted attack needs target labels y")
        return xt, detector.extract(xt)[0].argmax(1)
    return xt, check_labels(y, xt.shape[0], detector.nb_classes_)


class DetectorAttackART(EvasionAttack):
    """An ART ``EvasionAttack`` running an rce-art attack (``core_class``) against a detector.

    Its parameters are ``(estimator, detector, *the core's parameters, targeted, batch_size, verbose)``, derived
    from the core's ``__init__``: a subclass names ``core_class``, the detector method it needs and how to run the
    core, nothing else. ``attack_params`` (ART's ``set_params``) follows.

    Attributes:
        last_result_: Per-example outcome of the last ``generate``.
    """

    core_class: ClassVar[type]
    detector_method: ClassVar[str] = "logits_and_score"
    _estimator_requirements = (BaseEstimator, ClassifierMixin)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        core_names = [p.name for p in init_parameters(cls.core_class)]
        cls.attack_params = EvasionAttack.attack_params + [
            "detector", *core_names, *(p.name for p in _TRAILING if p.name not in core_names)]

        def __init__(self: DetectorAttackART, *args: Any, **kwargs: Any) -> None:
            DetectorAttackART._init(self, *args, **kwargs)

        __init__.__signature__ = with_signature(DetectorAttackART._init, _LEADING, cls.core_class,  # type: ignore[attr-defined]
                                                _TRAILING)
        __init__.__doc__ = cls.__doc__
        cls.__init__ = __init__  # type: ignore[method-assign,assignment]

    def _init(self, *args: Any, **kwargs: Any) -> None:
        bound = inspect.signature(type(self).__init__).bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.pop("self")
        super().__init__(estimator=values.pop("estimator"))
        for k, v in values.items():
            setattr(self, k, v)
        self._check_params()

    def core(self) -> Any:
        """The torch attack with this object's hyper-parameters."""
        return self.core_class(**{p.name: getattr(self, p.name) for p in init_parameters(self.core_class)})

    def _check_params(self) -> None:
        super()._check_params()
        self.core()  # validates the hyper-parameters with clear messages
        check_detector_on(self.estimator, self.detector, self.detector_method, self.batch_size)

    def _run(self, xt: Tensor, labels: Any) -> Any:
        raise NotImplementedError

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Adversarial examples (same dtype as ``x``).

        Args:
            x: Clean inputs ``(N, ...)`` within the estimator's clip values.
            y: Target classes if ``targeted`` (required), else true labels (default: the model's predictions).

        Returns:
            The returned examples (see the torch attack), same dtype as ``x``; per-input outcomes in
            ``last_result_``.
        """
        xt, labels = inputs_and_goals(self.detector, x, y, self.targeted)
        self.last_result_ = self._run(xt, labels)
        return self.last_result_.x_adv.cpu().numpy().astype(np.asarray(x).dtype, copy=False)
