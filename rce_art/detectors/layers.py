"""Activations of several named layers from one forward pass (hooks added per call and removed after)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["LayerFeatures", "leaf_layers"]


def leaf_layers(model: nn.Module) -> list[str]:
    """Names of the modules without children, in registration order (the "every layer" of Ma et al.)."""
    return [n for n, m in model.named_modules() if n and not list(m.children())]


class LayerFeatures:
    """Outputs of named layers of ``model`` (and optionally the input), reduced to ``(N, D_l)`` each.

    The forward pass is ``model.logits_and_features(x)``, so ``"features"`` names the final hidden layer
    (the input of the output layer) and ``"input"`` the input itself.

    Args:
        model: The module to run (with ``logits_and_features``, e.g. a detector's ``model``).
        layers: Module names (as in ``model.named_modules()``), ``"input"`` or ``"features"``.
        reduce: ``"flatten"`` (LID: every activation) or ``"spatial_mean"`` (Mahalanobis: the mean over
            spatial positions of a feature map ``(N, C, H, W)`` -> ``(N, C)``; 2-D outputs are kept).

    Raises:
        ValueError: On an unknown layer name or reduction.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], reduce: str = "flatten") -> None:
        if reduce not in ("flatten", "spatial_mean"):
            raise ValueError(f"reduce must be 'flatten' or 'spatial_mean', got {reduce!r}")
        names = dict(model.named_modules())
        unknown = [n for n in layers if n not in ("input", "features") and n not in names]
        if unknown:
            raise ValueError(f"model has no layers {unknown}; its layers are {leaf_layers(model)}")
        if not layers:
            raise ValueError("name at least one layer")
        self.model, self.layers, self.reduce = model, list(layers), reduce

    def _reduce(self, t: Tensor) -> Tensor:
        if self.reduce == "spatial_mean" and t.ndim > 2:
            return t.flatten(2).mean(2)
        return t.flatten(1)

    def __call__(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``(logits, [features of each layer, (N, D_l)])`` from one forward pass of ``x``."""
        out: dict[str, Tensor] = {}
        handles = []
        for name in self.layers:
            if name in ("input", "features"):
                continue
            module = self.model.get_submodule(name)
            handles.append(module.register_forward_hook(lambda m, a, o, name=name: out.__setitem__(name, o)))
        try:
            logits, out["features"] = self.model.logits_and_features(x)
        finally:
            for h in handles:
                h.remove()
        out["input"] = x
        missing = [n for n in self.layers if n not in out]
        if missing:
            raise RuntimeError(f"layers {missing} were not called in the forward pass; name other layers")
        return logits, [self._reduce(out[n]) for n in self.layers]

    @staticmethod
    def called_layers(model: nn.Module, x: Tensor) -> list[str]:
        """``["input", <every leaf module called by a forward pass of x, in call order>]``."""
        order: list[str] = []
        leaves = leaf_layers(model)
        handles = [model.get_submodule(n).register_forward_hook(lambda m, a, o, n=n: order.append(n)) for n in leaves]
        try:
            model.logits_and_features(x)
        finally:
            for h in handles:
                h.remove()
        return ["input", *dict.fromkeys(order)]
