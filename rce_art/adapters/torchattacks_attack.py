"""Adapter for torchattacks attacks (optional extra ``rce-art[torchattacks]``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rce_art._tensors import as_input_tensor, as_label_tensor, eval_mode, like, predicted_labels
from rce_art.models.estimator import Preprocessed, resolve_model

__all__ = ["TorchattacksAttack"]

CW_MARGIN = 1e-3
"""How far inside [0, 1] the pixel box is moved for torchattacks' C&W (see TorchattacksAttack)."""


def _import_torchattacks() -> Any:
    try:
        import torchattacks
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("torchattacks is not installed; install the extra: pip install 'rce-art[torchattacks]'") from e
    return torchattacks


class _UnitRange(nn.Module):
    """The model seen from torchattacks' ``[0, 1]`` space: ``u`` in ``[m, 1 - m]`` is mapped onto ``[lo, hi]``.

    With ``shift``, every row of logits is shifted to be >= 1 (differences between logits are unchanged).
    """

    def __init__(self, model: nn.Module, lo: float, hi: float, margin: float, shift: bool) -> None:
        super().__init__()
        self.model, self.lo, self.hi, self.margin, self.shift = model, lo, hi, margin, shift
        self.train(model.training)

    def to_model(self, u: Tensor) -> Tensor:
        return self.lo + (u - self.margin) / (1.0 - 2.0 * self.margin) * (self.hi - self.lo)

    def to_unit(self, x: Tensor) -> Tensor:
        return self.margin + (x - self.lo) / (self.hi - self.lo) * (1.0 - 2.0 * self.margin)

    def forward(self, u: Tensor) -> Tensor:
        z = self.model(self.to_model(u))
        return z - z.detach().min(dim=1, keepdim=True).values + 1.0 if self.shift else z


class TorchattacksAttack:
    """Run a torchattacks attack object on inputs in any pixel range.

    torchattacks works in ``[0, 1]``. For a model whose inputs lie in ``clip_values =
    (lo, hi)``, the adapter hands the attack (through its public ``set_model``) a view of the
    model that maps ``[0, 1]`` onto ``[lo, hi]``, runs it on the rescaled input, maps the result
    back and gives the attack its model back. Budgets such as ``eps`` are therefore in units of
    the ``[0, 1]``-rescaled input: equal to the model's units when ``hi - lo == 1`` (the paper's
    ``[-0.5, 0.5]``). If you configured the attack's own normalisation (``set_normalization_used``),
    the adapter leaves the attack as it is and passes inputs in the model's range, as torchattacks
    then expects.

    torchattacks' ``CW`` needs two corrections, applied here for that attack only:

    * it finds the best other class by multiplying logits with a 0/1 mask, which picks a
      masked 0 when logits are negative (as an RCE network's are): the adapter shifts
      every row of logits to be >= 1, which leaves all logit differences (and the C&W
      objective) unchanged;
    * its tanh-space variable is infinite for pixels exactly at the bounds, so those
      pixels can never move: the adapter maps the box to ``[m, 1 - m]`` with
      ``m = 1e-3`` inside torchattacks' space (and clips the result back to ``clip_values``).

    torchattacks' ``CW`` has a fixed ``c`` (no binary search). The model runs in eval mode
    (torchattacks' default) and every submodule's mode is restored after.

    With ``classifier=`` (an ART ``PyTorchClassifier``; torchattacks attacks are built on its ``.model``, since
    torchattacks needs a module) the adapter attacks what ART's ``predict`` computes: the estimator's preprocessing
    followed by its network, in the classifier's pixel range. An attack built on ``classifier.model`` of a
    classifier with preprocessing, run without ``classifier=``, would attack the network on unnormalised inputs:
    pass the classifier, or the adapter refuses when it can tell (the attack's model is the classifier's).

    Args:
        attack: A ``torchattacks.Attack`` built on the model (ordinary logits).
        clip_values: ``(min, max)`` pixel range of the model's inputs; default: the classifier's.
        classifier: The ART classifier whose ``.model`` the attack was built on (its preprocessing is applied).

    Raises:
        TypeError: If ``attack`` is not a torchattacks attack.
        ValueError: Without clip values, or if ``classifier``'s model is not the attack's model.
    """

    def __init__(self, attack: Any, clip_values: tuple[float, float] | None = None, classifier: Any = None) -> None:
        ta = _import_torchattacks()
        if not isinstance(attack, ta.attack.Attack):
            raise TypeError(f"expected a torchattacks attack, got {type(attack).__name__}")
        self._preprocessed: nn.Module | None = None
        if classifier is not None:
            view = resolve_model(classifier)
            if view.model is not attack.model:
                raise ValueError("the torchattacks attack must be built on classifier.model (torchattacks needs the "
                                 "module); the adapter applies the classifier's preprocessing before it")
            clip_values = clip_values if clip_values is not None else view.clip_values
            if view.has_preprocessing:
                self._preprocessed = Preprocessed(view)
        if clip_values is None:
            raise ValueError("TorchattacksAttack needs clip_values (or classifier=, the ART classifier)")
        lo, hi = float(clip_values[0]), float(clip_values[1])
        if not hi > lo:
            raise ValueError(f"clip_values must satisfy min < max, got {clip_values}")
        self.attack, self.clip_values = attack, (lo, hi)
        self._is_cw = isinstance(attack, ta.CW)

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
        seen = self._preprocessed if self._preprocessed is not None else model  # what ART's predict computes
        with eval_mode(model):
            if yt is None:
                yt = predicted_labels(seen, xt)
            lo, hi = self.clip_values
            if a.normalization_used is not None:
                if self._preprocessed is None:
                    return like(a(xt, yt), x, self.clip_values)
                view: nn.Module = self._preprocessed
                to_unit, to_model = (lambda t: t), (lambda t: t)
            else:
                unit = _UnitRange(seen, lo, hi, CW_MARGIN if self._is_cw else 0.0, shift=self._is_cw)
                view, to_unit, to_model = unit, unit.to_unit, unit.to_model
            try:
                a.set_model(view)
                x_adv = to_model(a(to_unit(xt), yt))
            finally:
                a.set_model(model)
        return like(x_adv, x, self.clip_values)

    def __repr__(self) -> str:
        return f"TorchattacksAttack({self.attack!r}, clip_values={self.clip_values})"
