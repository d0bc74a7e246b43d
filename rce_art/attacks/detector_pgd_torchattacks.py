"""Detector-aware PGD as a ``torchattacks.Attack`` (needs the extra ``rce-art[torchattacks]``)."""

from __future__ import annotations

from typing import Any

try:
    from torchattacks.attack import Attack
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("torchattacks is not installed; install the extra: pip install 'rce-art[torchattacks]'") from e

from torch import Tensor

from rce_art.attacks.detector_pgd import DetectorPGD

__all__ = ["DetectorPGDTorchattacks"]


class DetectorPGDTorchattacks(Attack):
    """torchattacks form of :class:`~rce_art.attacks.DetectorPGD`.

    Inputs are in the detector's classifier range unless torchattacks normalisation is set on the attack (then
    ``[0, 1]`` as usual); ``eps`` is in the classifier's pixel units. Targeted modes (``set_mode_targeted_*``) pick
    the targets.

    Args:
        model: The classifier under attack (ordinary logits).
        detector: A fitted detector of the family on that model.
        **params: Hyper-parameters of :class:`~rce_art.attacks.DetectorPGD` (``eps`` required; ``targeted`` is set
            by torchattacks' modes).

    Attributes:
        last_result_ (DetectorPGDResult): Per-example outcome of the last call.
    """

    def __init__(self, model: Any, detector: Any, **params: Any) -> None:
        super().__init__("DetectorPGD", model)
        params.pop("targeted", None)
        self.detector = detector
        self.params = params
        DetectorPGD(**params)  # validates the hyper-parameters
        self.supported_mode = ["default", "targeted"]

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        goal = self.get_target_label(images, labels) if self.targeted else labels
        x = self.normalize(images) if self.normalization_used is not None else images
        result = DetectorPGD(**self.params, targeted=self.targeted).run(self.detector, x, goal)
        self.last_result_ = result
        return self.inverse_normalize(result.x_adv) if self.normalization_used is not None else result.x_adv
