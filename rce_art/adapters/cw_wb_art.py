"""C&W-wb as an ART ``EvasionAttack``."""

from __future__ import annotations

from typing import Any

import numpy as np
from art.attacks import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator

from rce_art._validation import check_labels
from rce_art.adapters._common import as_input_tensor, predicted_labels, preserved_mode
from rce_art.attacks.cw_wb import CarliniWagnerWB, CWResult

__all__ = ["CarliniWagnerWBAttack"]


class CarliniWagnerWBAttack(EvasionAttack):
    """ART form of :class:`~rce_art.attacks.CarliniWagnerWB` (white-box C&W against a K-density detector).

    Args:
        estimator: The ART ``PyTorchClassifier`` under attack (ordinary logits).
        detector: A fitted :class:`~rce_art.detectors.KDensityDetector` on that classifier.
        confidence, binary_search_steps, max_iter, learning_rate, initial_const, abort_early,
        kernel_per_class, eta, two_phase: As in :class:`~rce_art.attacks.CarliniWagnerWB`.
        targeted: If true, ``generate``'s ``y`` are target classes.
        batch_size: Examples attacked together.
        verbose: Show a progress bar (examples done, success so far).

    Attributes:
        last_result_ (CWResult): Per-example outcome of the last ``generate`` (success, f2, l2, ...).
    """

    attack_params = EvasionAttack.attack_params + [
        "detector", "confidence", "binary_search_steps", "max_iter", "learning_rate", "initial_const",
        "abort_early", "kernel_per_class", "eta", "two_phase", "targeted", "batch_size", "verbose",
    ]
    _estimator_requirements = (BaseEstimator, ClassifierMixin)

    def __init__(
        self,
        estimator: Any,
        detector: Any,
        confidence: float = 0.0,
        binary_search_steps: int = 5,
        max_iter: int = 200,
        learning_rate: float = 0.05,
        initial_const: float = 1e-2,
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
        self.kernel_per_class, self.eta, self.two_phase = kernel_per_class, eta, two_phase
        self._targeted = bool(targeted)
        self.batch_size, self.verbose = batch_size, verbose
        self._check_params()

    def _core(self) -> CarliniWagnerWB:
        return CarliniWagnerWB(self.confidence, self.binary_search_steps, self.max_iter, self.learning_rate,
                               self.initial_const, self.abort_early, self.kernel_per_class, self.eta, self.two_phase)

    def _check_params(self) -> None:
        super()._check_params()
        self._core()  # validates the hyper-parameters with clear messages
        if not hasattr(self.detector, "kernels") or not hasattr(self.detector, "logits_and_features"):
            raise TypeError("detector must be a rce_art.KDensityDetector")
        if self.detector.classifier is not self.estimator and self.detector._view.model is not self.estimator.model:
            raise ValueError("the detector must be fitted on the attacked classifier (detector.classifier is another model)")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Craft C&W-wb examples.

        Args:
            x: Clean inputs ``(N, ...)`` within the estimator's clip values.
            y: Target classes if ``targeted`` (required), else true labels (default: predictions).

        Returns:
            Adversarial inputs (the input itself where the attack failed), same dtype as ``x``.
        """
        det = self.detector
        xt = as_input_tensor(x, det.device, det.clip_values)
        if y is None:
            if self.targeted:
                raise ValueError("a targeted C&W-wb attack needs target labels y")
            with preserved_mode(det._view.model):
                labels = predicted_labels(det._view.model, xt)
        else:
            labels = check_labels(y, xt.shape[0], det.nb_classes_)
        with preserved_mode(det._view.model):
            result = self._core().generate(det, xt, labels, self.targeted, self.batch_size, progress=self.verbose)
        self.last_result_: CWResult = result
        return result.x_adv.cpu().numpy().astype(np.asarray(x).dtype, copy=False)
