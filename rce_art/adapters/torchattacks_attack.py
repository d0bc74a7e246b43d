"""Adapter for torchattacks attacks (optional extra ``rce-art[torchattacks]``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rce_art.adapters._common import as_input_tensor, as_label_tensor, like

__all__ = ["TorchattacksAttack"]

#: How far inside [0, 1] the pixel box is moved for torchattacks' C&W (see TorchattacksAttack).
CW_MARGIN = 1e-3


def _import_torchattacks() -> Any:
    try:
        import torchattacks
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("torchattacks is not installed; install the extra: pip install 'rce-art[torchattacks]'") from e
    return torchattacks


class _ShiftedLogits(nn.Module):
    """Logits shifted per row so that all are >= 1; differences between logits are unchanged."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, x: Tensor) -> Tensor:
        z = self.model(x)
        return z - z.detach().min(dim=1, keepdim=True).values + 1.0


class TorchattacksAttack:
    """Run a torchattacks attack object on inputs in any pixel range.

    torchattacks works in ``[0, 1]``. For a model whose inputs lie in ``clip_values =
    (lo, hi)``, the adapter tells the attack (through its own ``set_normalization_used``)
    how ``[0, 1]`` maps to the model's range, runs it and restores the attack's settings.
    Budgets such as ``eps`` are therefore in units of the ``[0, 1]``-rescaled input: equal
    to the model's units when ``hi - lo == 1`` (the paper's ``[-0.5, 0.5]``).

    torchattacks' ``CW`` needs two corrections, applied here for that attack only:

    * it finds the best other class by multiplying logits with a 0/1 mask, which picks a
      masked 0 when logits are negative (as an RCE network's are): the adapter shifts
      every row of logits to be >= 1, which leaves all logit differences (and the C&W
      objective) unchanged;
    * its tanh-space variable is infinite for pixels exactly at the bounds, so those
      pixels can never move: the adapter maps the box to ``[m, 1 - m]`` with
      ``m = 1e-3`` inside torchattacks' space (and clips the result back to ``clip_values``).

    torchattacks' ``CW`` has a fixed ``c`` (no binary search).

    Args:
        attack: A ``torchattacks.Attack`` built on the model (ordinary logits).
        clip_values: ``(min, max)`` pixel range of the model's inputs.
    """

    def __init__(self, attack: Any, clip_values: tuple[float, float]) -> None:
        ta = _import_torchattacks()
        if not isinstance(attack, ta.attack.Attack):
            raise TypeError(f"expected a torchattacks attack, got {type(attack).__name__}")
        lo, hi = float(clip_values[0]), float(clip_values[1])
        if not hi > lo:
            raise ValueError(f"clip_values must satisfy min < max, got {clip_values}")
        self.attack, self.clip_values = attack, (lo, hi)
        self._is_cw = isinstance(attack, ta.CW)

    def _normalization(self, channels: int) -> tuple[list[float], list[float]]:
        lo, hi = self.clip_values
        m = CW_MARGIN if self._is_cw else 0.0
        # torchattacks feeds the model (u - mean) / std for u in [0, 1]; this maps [m, 1 - m] onto [lo, hi].
        std = (1.0 - 2.0 * m) / (hi - lo)
        return [m - lo * std] * channels, [std] * channels

    def generate(self, x: Any, y: Any = None) -> Any:
        """Craft adversarial inputs; ``y=None`` attacks the model's predicted labels.

        For torchattacks' targeted modes (e.g. ``set_mode_targeted_least_likely``), the
        attack itself picks the targets; ``y`` stays the reference label.
        """
        a = self.attack
        device = a.device if a.device is not None else torch.device("cpu")
        xt = as_input_tensor(x, device, self.clip_values)
        yt = as_label_tensor(y, xt.shape[0], device)
        model = a.model
        saved = (a.normalization_used, a._normalization_applied)
        try:
            if self._is_cw:
                a.set_model(_ShiftedLogits(model))
            a.set_normalization_used(*self._normalization(xt.shape[1]))
            if yt is None:
                yt = a.get_output_with_eval_nograd(xt).argmax(1)
            x_adv = a(xt, yt)
        finally:
            a.set_model(model)
            a.normalization_used, a._normalization_applied = saved
        return like(x_adv, x, self.clip_values)

    def __repr__(self) -> str:
        return f"TorchattacksAttack({self.attack!r}, clip_values={self.clip_values})"
