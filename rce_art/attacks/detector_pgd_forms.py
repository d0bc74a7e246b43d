"""Detector-aware PGD as an ART ``EvasionAttack``."""

from __future__ import annotations

from typing import Any

import numpy as np
from art.attacks import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator

from rce_art.attacks._art_form import check_detector_on, inputs_and_goals
from rce_art.attacks.detector_pgd import DetectorPGD, DetectorPGDResult

__all__ = ["DetectorPGDART"]


class DetectorPGDART(EvasionAttack):
    """ART form of [`DetectorPGD`][rce_art.attacks.DetectorPGD] (orthogonal / selective / combined PGD against a detector).

    Args:
        estimator: The ART ``PyTorchClassifier`` under attack (ordinary logits).
        detector: A fitted detector of the family on that classifier.
        eps: Budget in pixel units.
        norm: ``"linf"`` or ``"l2"``.
        mode: ``"orthogonal"``, ``"selective"``, ``"combined"`` or ``"classifier"``.
        steps: Iterations.
        step_size: Step (default ``eps/10`` or ``eps/5``).
        margin: Switching margin.
        detector_weight: Weight of the combined mode.
        restarts: Random restarts.
        random_start: Start in the ball.
        targeted: ``y`` are targets.
        eot_samples: Gradient averaging.
        seed: Seed of the random starts.
        batch_size: Examples attacked together.
        verbose: Progress bar.

    Attributes:
        last_result_ (DetectorPGDResult): Per-example outcome of the last ``generate``.
    """

    attack_params = EvasionAttack.attack_params + ["detector", *DetectorPGD.PARAMS, "batch_size", "verbose"]
    _estimator_requirements = (BaseEstimator, ClassifierMixin)

    def __init__(self, estimator: Any, detector: Any, eps: float, norm: str = "linf", mode: str = "orthogonal",
                 steps: int = 100, step_size: float | None = None, margin: float = 0.05, detector_weight: float = 1.0,
                 restarts: int = 1, random_start: bool = True, targeted: bool = False, eot_samples: int = 1,
                 seed: int = 0, batch_size: int = 128, verbose: bool = True) -> None:
        super().__init__(estimator=estimator)
        self.detector, self.eps, self.norm, self.mode, self.steps = detector, eps, norm, mode, steps
        self.step_size, self.margin, self.detector_weight, self.restarts = step_size, margin, detector_weight, restarts
        self.random_start, self.targeted, self.eot_samples, self.seed = random_start, bool(targeted), eot_samples, seed
        self.batch_size, self.verbose = batch_size, verbose
        self._check_params()

    def core(self) -> DetectorPGD:
        """The torch attack with this object's hyper-parameters."""
        return DetectorPGD(**{k: getattr(self, k) for k in DetectorPGD.PARAMS})

    def _check_params(self) -> None:
        super()._check_params()
        self.core()  # validates the hyper-parameters with clear messages
        check_detector_on(self.estimator, self.detector, "logits_and_score", self.batch_size)

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Adversarial examples (same dtype as ``x``); ``y``: targets (targeted, required) or true labels
        (default: the model's predictions)."""
        xt, labels = inputs_and_goals(self.detector, x, y, self.targeted)
        result = self.core().generate(self.detector, xt, labels, self.batch_size, verbose=self.verbose)
        self.last_result_: DetectorPGDResult = result
        return result.x_adv.cpu().numpy().astype(np.asarray(x).dtype, copy=False)
