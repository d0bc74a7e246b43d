"""The part every torchattacks form of an rce-art attack shares (needs the extra ``rce-art[torchattacks]``)."""

from __future__ import annotations

from typing import Any

try:
    from torchattacks.attack import Attack
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("torchattacks is not installed; install the extra: pip install 'rce-art[torchattacks]'") from e

from torch import Tensor

__all__ = ["DetectorAttackForm"]


class DetectorAttackForm(Attack):
    """A ``torchattacks.Attack`` running an rce-art attack against ``detector``.

    Inputs are in the detector's classifier range unless torchattacks normalisation is set on the attack (then
    ``[0, 1]`` as usual for torchattacks); targeted modes (``set_mode_targeted_*``) pick the targets. Subclasses
    implement ``run(x, goal) -> result`` with a ``result.x_adv`` in the classifier's range.

    Attributes:
        last_result_: Per-example outcome of the last call.
    """

    def __init__(self, name: str, model: Any, detector: Any) -> None:
        super().__init__(name, model)
        self.detector = detector
        self.supported_mode = ["default", "targeted"]

    def run(self, x: Tensor, goal: Tensor) -> Any:
        raise NotImplementedError

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        goal = self.get_target_label(images, labels) if self.targeted else labels
        x = self.normalize(images) if self.normalization_used is not None else images
        self.last_result_ = self.run(x, goal)
        x_adv = self.last_result_.x_adv
        return self.inverse_normalize(x_adv) if self.normalization_used is not None else x_adv
