"""Adapter for Foolbox 3 attacks (optional extra ``rce-art[foolbox]``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from rce_art._tensors import as_input_tensor, as_label_tensor, eval_mode, like, predicted_labels
from rce_art.models.estimator import Preprocessed, resolve_model

__all__ = ["FoolboxAttack"]


def _import_foolbox() -> Any:
    try:
        import foolbox
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("Foolbox is not installed; install the extra: pip install 'rce-art[foolbox]'") from e
    return foolbox


class FoolboxAttack:
    """Run a Foolbox 3 attack object on arrays or tensors and return its *clipped* output.

    Pass the ART classifier itself: the adapter then attacks what ART's ``predict`` computes, the estimator's
    preprocessing (e.g. ``preprocessing=(mean, std)``) followed by its network, in the classifier's pixel range. A
    bare ``nn.Module`` is attacked as it is (its inputs are what it receives): passing ``classifier.model`` of a
    classifier with preprocessing would attack the network on unnormalised inputs, a wrong result.

    Args:
        attack: A Foolbox attack, configured with Foolbox's own parameters (e.g.
            ``foolbox.attacks.LinfPGD(steps=10)``).
        model: The ART ``PyTorchClassifier`` to attack (preferred), or a torch module (ordinary logits).
        clip_values: ``(min, max)`` pixel range (Foolbox's ``bounds``); default: the classifier's.
        epsilon: Perturbation budget for fixed-epsilon attacks; ``None`` for minimisation
            attacks such as C&W.
        targeted: If true, the labels passed to [`generate`][] are target classes.

    Raises:
        TypeError: If ``attack`` is not a Foolbox attack, or ``model`` neither an ART classifier nor a module.
        ValueError: Without ``clip_values`` for a bare module.
    """

    def __init__(
        self, attack: Any, model: Any, clip_values: tuple[float, float] | None = None, epsilon: float | None = None,
        targeted: bool = False
    ) -> None:
        fb = _import_foolbox()
        if not isinstance(attack, fb.attacks.base.Attack):
            raise TypeError(f"expected a foolbox attack, got {type(attack).__name__}")
        view = resolve_model(model)
        clip = clip_values if clip_values is not None else view.clip_values
        if clip is None:
            raise ValueError("FoolboxAttack needs clip_values for a bare torch module (or pass the ART classifier)")
        self.attack, self.epsilon, self.targeted = attack, epsilon, targeted
        self.model: nn.Module = Preprocessed(view) if view.has_preprocessing else view.model
        self.clip_values = (float(clip[0]), float(clip[1]))

    def generate(self, x: Any, y: Any = None) -> Any:
        """Craft adversarial inputs; ``y=None`` attacks the model's predicted labels (required for targeted)."""
        fb = _import_foolbox()
        device = next(self.model.parameters()).device
        xt = as_input_tensor(x, device, self.clip_values)
        yt = as_label_tensor(y, xt.shape[0], device)
        with eval_mode(self.model):
            if yt is None:
                if self.targeted:
                    raise ValueError("a targeted Foolbox attack needs target labels y")
                yt = predicted_labels(self.model, xt)
            fmodel = fb.PyTorchModel(self.model, bounds=self.clip_values, device=device)
            criterion = fb.criteria.TargetedMisclassification(yt) if self.targeted else fb.criteria.Misclassification(yt)
            _, clipped, _ = self.attack(fmodel, xt, criterion, epsilons=self.epsilon)
        return like(clipped, x, self.clip_values)

    def __repr__(self) -> str:
        return f"FoolboxAttack({self.attack!r}, epsilon={self.epsilon}, targeted={self.targeted})"
