"""C&W-wb as an ART ``EvasionAttack``."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from rce_art.attacks._art_form import DetectorAttackART
from rce_art.attacks.cw_wb import CarliniWagnerWB, CWResult, check_kdensity

__all__ = ["CarliniWagnerWBART"]


class CarliniWagnerWBART(DetectorAttackART):
    """ART form of [`CarliniWagnerWB`][rce_art.attacks.CarliniWagnerWB] (white-box C&W against a K-density detector).

    Its parameters are the torch attack's (``targeted`` among them: ``generate``'s ``y`` are then target classes),
    with the same defaults (derived from its signature), between these:

    Args:
        estimator: The ART ``PyTorchClassifier`` under attack (ordinary logits).
        detector: A fitted [`KDensityDetector`][rce_art.detectors.KDensityDetector] on that classifier.
        batch_size: Examples attacked together.
        verbose: Show a progress bar (examples done, success so far).

    Attributes:
        last_result_ (CWResult): Per-example outcome of the last ``generate`` (success, f2, l2, ...).
    """

    core_class = CarliniWagnerWB
    detector_method = "kernels"

    def _check_params(self) -> None:
        check_kdensity(self.detector)  # names the attack for other detectors
        super()._check_params()

    def _run(self, xt: Tensor, labels: Any) -> CWResult:
        return self.core().generate(self.detector, xt, labels, batch_size=self.batch_size, verbose=self.verbose)
