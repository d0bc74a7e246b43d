"""Activations of several named layers from one forward pass (hooks added per call and removed after)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from rce_art.models.features import resolve_layer_name

__all__ = ["LayerFeatures", "leaf_layers"]


def leaf_layers(model: nn.Module) -> list[str]:
    """Names of the modules without children, in registration order (the "every layer" of Ma et al.)."""
    return [n for n, m in model.named_modules() if n and not list(m.children())]


class LayerFeatures:
    """Outputs of named layers of ``model`` (and optionally the input), reduced to ``(N, D_l)`` each.

    The forward pass is ``model.logits_and_features(x)``, so ``"features"`` names the final hidden layer
    (the input of the output layer) and ``"input"`` the input itself.

    A module called more than once per forward pass (one activation module reused at several call sites) has
    one output per call: name them ``"name#1"``, ``"name#2"``, ... in call order; the plain name of such a module
    is refused rather than silently tapping one of its calls.

    Args:
        model: The module to run (with ``logits_and_features``, e.g. a detector's ``model``).
        layers: Module names (as in ``model.named_modules()``, optionally with ``#k``: the ``k``-th call),
            ``"input"`` or ``"features"``.
        reduce: ``"flatten"`` (LID: every activation) or ``"spatial_mean"`` (Mahalanobis: the mean over
            spatial positions of a feature map ``(N, C, H, W)`` -> ``(N, C)``; 2-D outputs are kept).

    Raises:
        ValueError: On an unknown layer name or reduction.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], reduce: str = "flatten") -> None:
        if reduce not in ("flatten", "spatial_mean"):
            raise ValueError(f"reduce must be 'flatten' or 'spatial_mean', got {reduce!r}")
        if not layers:
            raise ValueError("name at least one layer")
        resolved = []
        for n in layers:  # the user's own module names work through rce-art's wrappers ("conv2" = "model.conv2")
            if n in ("input", "features"):
                resolved.append(n)
                continue
            base = resolve_layer_name(model, _base(n))
            resolved.append(base if _call_index(n) is None else f"{base}#{_call_index(n)}")
        self.model, self.layers, self.reduce = model, resolved, reduce

    def _reduce(self, t: Tensor) -> Tensor:
        if self.reduce == "spatial_mean" and t.ndim > 2:
            return t.flatten(2).mean(2)
        return t.flatten(1)

    def __call__(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``(logits, [features of each layer, (N, D_l)])`` from one forward pass of ``x``.

        Raises:
            RuntimeError: If a named layer is not called, or is called several times and named without ``#k``.
        """
        calls: dict[str, list[Tensor]] = {}
        handles = []
        for base in dict.fromkeys(_base(n) for n in self.layers if n not in ("input", "features")):
            calls[base] = []
            module = self.model.get_submodule(base)
            handles.append(module.register_forward_hook(lambda m, a, o, base=base: calls[base].append(o)))
        try:
            logits, features = self.model.logits_and_features(x)
        finally:
            for h in handles:
                h.remove()
        out = []
        for name in self.layers:
            if name in ("input", "features"):
                out.append(x if name == "input" else features)
                continue
            got = calls[_base(name)]
            k = _call_index(name)
            if not got or (k is not None and k > len(got)):
                raise RuntimeError(f"layer {name!r} was not called in the forward pass ({len(got)} calls); "
                                   "name other layers")
            if k is None and len(got) > 1:
                raise RuntimeError(f"layer {name!r} is called {len(got)} times in one forward pass (one module "
                                   f"reused at several call sites); name one call: {name}#1 ... {name}#{len(got)}")
            out.append(got[0 if k is None else k - 1])
        return logits, [self._reduce(t) for t in out]

    @staticmethod
    def called_layers(model: nn.Module, x: Tensor) -> list[str]:
        """``["input", <every call of a leaf module in a forward pass of x, in call order>]``.

        A leaf called once is named as in ``named_modules()``; a leaf called ``n > 1`` times gives ``n`` entries
        ``"name#1"`` ... ``"name#n"``, so every activation output is tapped.
        """
        order: list[str] = []
        leaves = leaf_layers(model)
        handles = [model.get_submodule(n).register_forward_hook(lambda m, a, o, n=n: order.append(n)) for n in leaves]
        try:
            model.logits_and_features(x)
        finally:
            for h in handles:
                h.remove()
        total = {n: order.count(n) for n in order}
        seen: dict[str, int] = {}
        names = []
        for n in order:
            seen[n] = seen.get(n, 0) + 1
            names.append(n if total[n] == 1 else f"{n}#{seen[n]}")
        return ["input", *names]


def _base(name: str) -> str:
    """The module name of a layer name (``"block.act#2"`` -> ``"block.act"``)."""
    return name.rsplit("#", 1)[0] if _call_index(name) is not None else name


def _call_index(name: str) -> int | None:
    """``k`` of a ``"name#k"`` layer name (1-based), else ``None``."""
    base, sep, k = name.rpartition("#")
    return int(k) if sep and base and k.isdigit() and int(k) >= 1 else None
