"""C&W-wb as an ART ``EvasionAttack``."""

from __future__ import annotations

from typing import Any

import numpy as np
from art.attacks import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator

from rce_art.attacks._art_form import check_detector_on, inputs_and_goals
from rce_art.attacks.cw_wb import CarliniWagnerWB, CWResult, check_kdensity

__all__ = ["CarliniWagnerWBART"]

_DEFAULTS = CarliniWagnerWB().params()


class CarliniWagnerWBART(EvasionAttack):
    """ART form of [`CarliniWagnerWB`][rce_art.attacks.CarliniWagnerWB] (white-box C&W against a K-density detector).

    Args:
        estimator: The ART ``PyTorchClassifier`` under attack (ordinary logits).
        detector: A fitted [`KDensityDetector`][rce_art.detectors.KDensityDetector] on that classifier.
        confidence: ``kappa``, as in [`CarliniWagnerWB`][rce_art.attacks.CarliniWagnerWB] (as are the defaults of all below).
        binary_search_steps: Rounds of phase 2's search on ``c``.
        max_iter: Adam steps per round.
        learning_rate: Adam step size in tanh space.
        initial_const: First ``c`` of phase 2.
        phase1_const: First ``c`` of phase 1.
        phase1_search_steps: Rounds of phase 1's search.
        abort_early: Stop a stalled round early.
        kernel_per_class: Attacker's kernel points per class.
        eta: Detector margin per class (``None``: median of the class's training points).
        two_phase: Run phase 1 first.
        targeted: If true, ``generate``'s ``y`` are target classes.
        batch_size: Examples attacked together.
        verbose: Show a progress bar (examples done, success so far).

    Attributes:
        last_result_ (CWResult): Per-example outcome of the last ``generate`` (success, f2, l2, ...).
    """

    attack_params = EvasionAttack.attack_params + [
        "detector", *CarliniWagnerWB.PARAMS, "targeted", "batch_size", "verbose",
    ]
    _estimator_requirements = (BaseEstimator, ClassifierMixin)

    def __init__(
        self,
        estimator: Any,
        detector: Any,
        confidence: float = _DEFAULTS["confidence"],
        binary_search_steps: int = _DEFAULTS["binary_search_steps"],
        max_iter: int = _DEFAULTS["max_iter"],
        learning_rate: float = _DEFAULTS["learning_rate"],
        initial_const: float = _DEFAULTS["initial_const"],
        phase1_const: float = _DEFAULTS["phase1_const"],
        phase1_search_steps: int = _DEFAULTS["phase1_search_steps"],
        abort_early: bool = True,
        kernel_per_class: int | None = 100,
        eta: Any = None,
        two_phase: bool = True,
        targeted: bool = False,
        batch_size: int = 128,
        verbose: bool = True,
    ) -> None:
        super().__init__(estimator=estimator)
        self.detector = detector
        self.confidence, self.binary_search_steps, self.max_iter = confidence, binary_search_steps, max_iter
        self.learning_rate, self.initial_const, self.abort_early = learning_rate, initial_const, abort_early
        self.phase1_const, self.phase1_search_steps = phase1_const, phase1_search_steps
        self.kernel_per_class, self.eta, self.two_phase = kernel_per_class, eta, two_phase
        self.targeted = bool(targeted)
        self.batch_size, self.verbose = batch_size, verbose
        self._check_params()

    def core(self) -> CarliniWagnerWB:
        """The torch attack with this object's hyper-parameters."""
        return CarliniWagnerWB(**{k: getattr(self, k) for k in CarliniWagnerWB.PARAMS})

    def _check_params(self) -> None:
        super()._check_params()
        self.core()  # validates the hyper-parameters with clear messages
        check_kdensity(self.detector)  # names the attack for other detectors
        check_detector_on(self.estimator, self.detector, "kernels", self.batch_size)

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Craft C&W-wb examples.

        Args:
            x: Clean inputs ``(N, ...)`` within the estimator's clip values.
            y: Target classes if ``targeted`` (required), else true labels (default: predictions).

        Returns:
            The returned examples (see [`CarliniWagnerWB`][rce_art.attacks.CarliniWagnerWB]), same dtype as ``x``.
        """
        xt, labels = inputs_and_goals(self.detector, x, y, self.targeted)
        result = self.core().generate(self.detector, xt, labels, self.targeted, self.batch_size, verbose=self.verbose)
        self.last_result_: CWResult = result
        return result.x_adv.cpu().numpy().astype(np.asarray(x).dtype, copy=False)
