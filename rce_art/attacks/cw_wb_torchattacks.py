"""C&W-wb as a ``torchattacks.Attack`` (needs the extra ``rce-art[torchattacks]``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from rce_art.attacks._torchattacks_form import DetectorAttackForm
from rce_art.attacks.cw_wb import CarliniWagnerWB, CWResult

__all__ = ["CarliniWagnerWBTorchattacks"]


class CarliniWagnerWBTorchattacks(DetectorAttackForm):
    """torchattacks form of [`CarliniWagnerWB`][rce_art.attacks.CarliniWagnerWB].

    Inputs are in the detector's classifier range (e.g. ``[-0.5, 0.5]``) unless torchattacks
    normalisation is set on the attack, in which case they are in ``[0, 1]`` as usual for
    torchattacks. Targeted modes (``set_mode_targeted_*``) pick the targets.

    Args:
        model: The classifier under attack (ordinary logits).
        detector: A fitted [`KDensityDetector`][rce_art.detectors.KDensityDetector] on that model.
        **params: Hyper-parameters of [`CarliniWagnerWB`][rce_art.attacks.CarliniWagnerWB].

    Attributes:
        last_result_ (CWResult): Per-example outcome of the last call.
    """

    def __init__(self, model: Any, detector: Any, **params: Any) -> None:
        super().__init__("CarliniWagnerWB", model, detector)
        self.core = CarliniWagnerWB(**params)

    def run(self, x: Tensor, goal: Tensor) -> CWResult:
        return CarliniWagnerWB(**{**self.core.params(), "targeted": bool(self.targeted)}).run(self.detector, x, goal)
