"""One forward pass, two outputs: logits and the final hidden layer.

Every model in the library answers ``model.logits_and_features(x) -> (logits, features)``
where ``features`` is the input of the last linear layer, flattened to ``(N, D)``. The
library's own models implement it directly; [`FeatureTap`][] gives it to any user
``nn.Module`` with a hook registered once (not on every call, as ART's
``get_activations`` does).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = ["FeatureModel", "FeatureTap", "as_feature_model", "logits_and_features", "output_layer"]


@runtime_checkable
class FeatureModel(Protocol):
    """A module whose ``logits_and_features(x)`` returns ``(logits (N, L), features (N, D))``."""

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


def resolve_layer_name(model: nn.Module, name: str) -> str:
    """``name`` as a submodule path of ``model``, accepting the user's own module names through rce-art's wrappers.

    ``FeatureTap``, ``ReverseLogits`` and ``Preprocessed`` hold the user's network as ``.model``: ``"conv2"`` of the
    user's module is ``"model.conv2"`` (or ``"model.model.conv2"``) of the wrapper. The name as given wins.

    Raises:
        ValueError: If no submodule of that name exists, listing the user's module names.
    """
    modules = dict(model.named_modules())
    for candidate in (name, f"model.{name}", f"model.model.{name}"):
        if candidate in modules:
            return candidate
    own = [n.removeprefix("model.").removeprefix("model.") for n, m in modules.items() if n and not list(m.children())]
    raise ValueError(f"the model has no layer named {name!r}; its layers are {own}")


def _linear_calls(model: nn.Module, x: Tensor) -> tuple[Tensor, list[tuple[str, Tensor, Tensor]]]:
    """One forward pass of ``x``: the logits and ``(name, input, output)`` of every ``nn.Linear`` call, in order."""
    calls: list[tuple[str, Tensor, Tensor]] = []
    handles = [m.register_forward_hook(lambda m, a, o, n=n: calls.append((n, a[0], o)))
               for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits, calls


def _head(model: nn.Module, logits: Tensor, calls: list[tuple[str, Tensor, Tensor]]) -> tuple[str, Tensor]:
    """``(name, input)`` of the last ``nn.Linear`` call whose output is ``logits``."""
    for name, inp, out in reversed(calls):
        if out is logits or (out.shape == logits.shape and torch.equal(out, logits)):
            return name, inp
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    raise ValueError(
        "the model's logits are not the output of one of its nn.Linear modules (a head written with F.linear, or "
        "logits transformed after the last layer), so the final hidden layer cannot be found: pass layer='<name>' "
        f"naming the module whose input is the final hidden layer (its nn.Linear modules: {linear})"
    )


def output_layer(model: nn.Module, x: Tensor) -> str:
    """Name of the ``nn.Linear`` module whose output *is* the model's logits, found from a forward pass of ``x``.

    The last ``nn.Linear`` *called* whose output is the returned tensor (or equals it), not the last one registered:
    an auxiliary head registered after the classifier's is not mistaken for it.

    Raises:
        ValueError: If no ``nn.Linear`` module produces the logits (a head written with ``F.linear``, or logits
            transformed after the last layer): the caller must name the layer.
    """
    with torch.no_grad():
        logits, calls = _linear_calls(model, x)
    return _head(model, logits, calls)[0]


class FeatureTap(nn.Module):
    """Wrap any classifier so it returns its final hidden layer with its logits.

    The final hidden layer is the *input* of ``layer``: by default the ``nn.Linear`` whose
    output is the logits, found from the first forward pass ([`output_layer`][rce_art.models.output_layer]:
    the last one *called*, not the last registered, so an auxiliary head is not mistaken
    for the classifier's; a head written with ``F.linear`` is refused with a clear error);
    name another module with ``layer``. ``layer_name`` says which layer is read. A forward
    pre-hook is added for the duration of each [`logits_and_features`][] call and removed
    after it, so no hook stays on the user's module.

    Args:
        model: A classifier mapping inputs ``(N, ...)`` to logits ``(N, L)``.
        layer: Name of the module (as in ``model.named_modules()``) whose input is the
            feature vector, or ``None`` for the ``nn.Linear`` producing the logits.

    Raises:
        ValueError: If ``layer`` is not a submodule, or ``None`` and there is no ``nn.Linear``.
    """

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        if layer is None and not any(isinstance(m, nn.Linear) for m in model.modules()):
            raise ValueError("model has no nn.Linear layer; pass layer='<name>' naming the module whose input is the "
                             "final hidden layer")
        # found at the first forward pass when None; the user's own module names are accepted through wrappers
        self.layer_name: str | None = None if layer is None else resolve_layer_name(model, layer)
        self.train(model.training)  # adopt the wrapped model's mode instead of nn.Module's default

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(logits (N, L), features (N, D))`` from one forward pass.

        A forward pre-hook on the feature layer records its input during this call only and is
        removed before returning, so the user's module never keeps a hook of ours.
        """
        if self.layer_name is None:  # the first call finds the head in its own forward pass (no extra pass)
            logits, calls = _linear_calls(self.model, x)
            self.layer_name, feats = _head(self.model, logits, calls)
            return logits, feats.flatten(1)
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
