"""What the pytorch-ood bridge needs to know about a pytorch-ood detector: the module, the representation it scores,
and its constructor parameters (for a description that is the same in every process, and for saving without
pickle)."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

from torch import Tensor

__all__ = ["constructor_params", "describe", "detector_kind", "pytorch_ood_detector_module"]

_EXTRA = 'pytorch-ood is not installed; install the extra: pip install "rce-art[ood]"'


def pytorch_ood_detector_module() -> Any:
    """``pytorch_ood.detector``.

    Raises:
        ImportError: Naming the extra, when pytorch-ood is not installed.
    """
    try:
        import pytorch_ood.detector as module
    except ImportError as e:
        raise ImportError(_EXTRA) from e
    return module


def detector_kind(detector: Any) -> str:
    """``"logits"`` or ``"features"``: the representation the pytorch-ood detector scores.

    Raises:
        TypeError: On anything else.
    """
    from pytorch_ood.api import Detector, FeaturesDetector, LogitsDetector

    if isinstance(detector, LogitsDetector):
        return "logits"
    if isinstance(detector, FeaturesDetector):
        return "features"
    what = "a pytorch-ood detector" if isinstance(detector, Detector) else type(detector).__name__
    raise TypeError(f"OODDetector wraps pytorch-ood detectors that score logits (LogitsDetector) or features "
                    f"(FeaturesDetector), got {what} ({type(detector).__name__}); detectors of feature maps, several "
                    "layers or input gradients read the network themselves and cannot share the classifier's pass")


def describe(detector: Any) -> str:
    """``"KNN(k=50, normalize=True)"``: a pytorch-ood detector's class and constructor parameters (tensors by shape
    and a digest of their values), the same in every process (no object address)."""
    scalars, tensors = constructor_params(detector, strict=False)
    parts = [f"{k}={v!r}" for k, v in scalars.items()]
    parts += [f"{k}=tensor{tuple(t.shape)}:{hashlib.sha256(t.double().numpy().tobytes()).hexdigest()[:12]}"
              for k, t in tensors.items()]
    return f"{type(detector).__name__}({', '.join(parts)})"


def constructor_params(detector: Any, strict: bool = True) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The pytorch-ood detector's constructor parameters (all but its model / encoder), read from the attributes of
    the same name: JSON scalars and tensors (``strict=False``: those that can be read, for a description).

    Raises:
        ValueError: If the class is not one of ``pytorch_ood.detector``'s or a parameter cannot be read or stored.
    """
    mod = pytorch_ood_detector_module()
    cls = type(detector)
    if strict and getattr(mod, cls.__name__, None) is not cls:
        raise ValueError(f"{cls.__module__}.{cls.__name__} is not a class of pytorch_ood.detector: rce-art cannot "
                         "rebuild it from a file without pickling; keep the detector object and fit again instead")
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)][1:]  # [0]: model / encoder
    scalars, tensors = {}, {}
    for p in params:
        if not hasattr(detector, p.name):
            if not strict:
                continue
            raise ValueError(f"pytorch-ood's {cls.__name__} does not keep its parameter {p.name!r} under that name: "
                             "rce-art cannot save it")
        v = getattr(detector, p.name)
        if isinstance(v, Tensor):
            tensors[p.name] = v.detach().cpu().contiguous()
        elif v is None or isinstance(v, (bool, int, float, str)):
            scalars[p.name] = v
        elif strict:
            raise ValueError(f"{cls.__name__}'s parameter {p.name!r} is a {type(v).__name__}: rce-art saves numbers, "
                             "strings and tensors only (never pickles)")
    return scalars, tensors
