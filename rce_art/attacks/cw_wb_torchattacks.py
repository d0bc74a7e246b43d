"""C&W-wb as a ``torchattacks.Attack`` (needs the extra ``rce-art[torchattacks]``)."""

from __future__ import annotations

from typing import Any

try:
    from torchattacks.attack import Attack
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("torchattacks is not installed; install the extra: pip install 'rce-art[torchattacks]'") from e

from torch import Tensor

from rce_art.attacks.cw_wb import CarliniWagnerWB

__all__ = ["CarliniWagnerWBTorchattacks"]


class CarliniWagnerWBTorchattacks(Attack):
    """torchattacks form of :class:`~rce_art.attacks.CarliniWagnerWB`.

    Inputs are in the detector's classifier range (e.g. ``[-0.5, 0.5]``) unless torchattacks
    normalisation is set on the attack, in which case they are in ``[0, 1]`` as usual for
    torchattacks. Targeted modes (``set_mode_targeted_*``) pick the targets.

    Args:
        model: The classifier under attack (ordinary logits).
        detector: A fitted :class:`~rce_art.detectors.KDensityDetector` on that model.
        **params: Hyper-parameters of :class:`~rce_art.attacks.CarliniWagnerWB`.

    Attributes:
        last_result_ (CWResult): Per-example outcome of the last call.
    """

    def __init__(self, model: Any, detector: Any, **params: Any) -> None:
        super().__init__("CarliniWagnerWB", model)
        self.detector = detector
        self.core = CarliniWagnerWB(**params)
        self.supported_mode = ["default", "targeted"]

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        goal = self.get_target_label(images, labels) if self.targeted else labels
        x = self.normalize(images) if self.normalization_used is not None else images
        result = self.core.run(self.detector, x, goal, targeted=self.targeted)
        self.last_result_ = result
        x_adv = result.x_adv
        return self.inverse_normalize(x_adv) if self.normalization_used is not None else x_adv
