"""Detector-aware PGD as a ``torchattacks.Attack`` (needs the extra ``rce-art[torchattacks]``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from rce_art.attacks._torchattacks_form import DetectorAttackForm
from rce_art.attacks.detector_pgd import DetectorPGD, DetectorPGDResult

__all__ = ["DetectorPGDTorchattacks"]


class DetectorPGDTorchattacks(DetectorAttackForm):
    """torchattacks form of [`DetectorPGD`][rce_art.attacks.DetectorPGD].

    Inputs are in the detector's classifier range unless torchattacks normalisation is set on the attack (then
    ``[0, 1]`` as usual); ``eps`` is in the classifier's pixel units. Targeted modes (``set_mode_targeted_*``) pick
    the targets.

    Args:
        model: The classifier under attack (ordinary logits).
        detector: A fitted detector of the family on that model.
        **params: Hyper-parameters of [`DetectorPGD`][rce_art.attacks.DetectorPGD] (``eps`` required; ``targeted`` is set
            by torchattacks' modes).

    Attributes:
        last_result_ (DetectorPGDResult): Per-example outcome of the last call.
    """

    def __init__(self, model: Any, detector: Any, **params: Any) -> None:
        super().__init__("DetectorPGD", model, detector)
        params.pop("targeted", None)
        self.params = params
        DetectorPGD(**params)  # validates the hyper-parameters

    def run(self, x: Tensor, goal: Tensor) -> DetectorPGDResult:
        return DetectorPGD(**self.params, targeted=self.targeted).run(self.detector, x, goal)
