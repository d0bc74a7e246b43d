"""Detector-aware PGD as an ART ``EvasionAttack``."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from rce_art.attacks._art_form import DetectorAttackART
from rce_art.attacks.detector_pgd import DetectorPGD, DetectorPGDResult

__all__ = ["DetectorPGDART"]


class DetectorPGDART(DetectorAttackART):
    """ART form of [`DetectorPGD`][rce_art.attacks.DetectorPGD] (orthogonal / selective / combined PGD against a detector).

    Its parameters are the torch attack's (``eps`` required; ``targeted`` among them), with the same defaults
    (derived from its signature), between these:

    Args:
        estimator: The ART ``PyTorchClassifier`` under attack (ordinary logits).
        detector: A fitted detector of the family on that classifier.
        batch_size: Examples attacked together.
        verbose: Progress bar.

    Attributes:
        last_result_ (DetectorPGDResult): Per-example outcome of the last ``generate``.
    """

    core_class = DetectorPGD

    def _run(self, xt: Tensor, labels: Any) -> DetectorPGDResult:
        return self.core().generate(self.detector, xt, labels, self.batch_size, verbose=self.verbose)
