"""One forward pass, two outputs: logits and the final hidden layer.

Every model in the library answers ``model.logits_and_features(x) -> (logits, features)``
where ``features`` is the input of the last linear layer, flattened to ``(N, D)``. The
library's own models implement it directly; [`FeatureTap`][] gives it to any user
``nn.Module`` with a hook registered once (not on every call, as ART's
``get_activations`` does).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = ["FeatureModel", "FeatureTap", "as_feature_model", "logits_and_features"]


@runtime_checkable
class FeatureModel(Protocol):
    """A module whose ``logits_and_features(x)`` returns ``(logits (N, L), features (N, D))``."""

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


def _find_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    modules = dict(model.named_modules())
    if layer is not None:
        if layer not in modules:
            linear = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
            raise ValueError(f"model has no submodule named {layer!r}; its nn.Linear layers are {linear}")
        return layer, modules[layer]
    linear = [(n, m) for n, m in modules.items() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError(
            "model has no nn.Linear layer; pass layer='<name>' naming the module whose input is the final hidden layer"
        )
    return linear[-1]


class FeatureTap(nn.Module):
    """Wrap any classifier so it returns its final hidden layer with its logits.

    The final hidden layer is the *input* of ``layer``: by default the last
    ``nn.Linear`` registered in ``model`` (for a sequential classifier, its output
    layer); name another module with ``layer`` when that guess is wrong. A forward
    pre-hook is added for the duration of each [`logits_and_features`][] call and removed
    after it, so no hook stays on the user's module.

    Args:
        model: A classifier mapping inputs ``(N, ...)`` to logits ``(N, L)``.
        layer: Name of the module (as in ``model.named_modules()``) whose input is the
            feature vector, or ``None`` for the last ``nn.Linear``.

    Raises:
        ValueError: If ``layer`` is not a submodule, or ``None`` and there is no ``nn.Linear``.
    """

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.layer_name = _find_layer(model, layer)[0]
        self.train(model.training)  # adopt the wrapped model's mode instead of nn.Module's default

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(logits (N, L), features (N, D))`` from one forward pass.

        A forward pre-hook on the feature layer records its input during this call only and is
        removed before returning, so the user's module never keeps a hook of ours.
        """
        captured: list[Tensor] = []
        layer = self.model.get_submodule(self.layer_name)
        handle = layer.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"layer {self.layer_name!r} was not called in the forward pass; name another layer")
        return logits, captured[-1].flatten(1)

    def extra_repr(self) -> str:
        return f"layer={self.layer_name!r}"


def as_feature_model(model: nn.Module, layer: str | None = None) -> nn.Module:
    """Return ``model`` if it already gives features (and ``layer`` is ``None``), else a [`FeatureTap`][]."""
    if layer is None and isinstance(model, FeatureModel):
        return model
    return FeatureTap(model, layer)


def logits_and_features(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Call ``model.logits_and_features(x)``; wrap ``model`` in [`FeatureTap`][] first if it has none."""
    if isinstance(model, FeatureModel):
        return model.logits_and_features(x)
    return FeatureTap(model).logits_and_features(x)
