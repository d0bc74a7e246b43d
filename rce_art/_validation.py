"""Input checks shared by the public API (private module).

Every public entry point validates its inputs here so that bad input fails early
with a message that says what was wrong and how to fix it, never as a NaN or a
shape error deep inside torch.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rce_art.exceptions import InvalidParameterError

ArrayLike = np.ndarray | Tensor


def is_data_source(x: Any) -> bool:
    """Whether ``x`` is a torch ``DataLoader`` or ``Dataset`` (rather than an array or tensor)."""
    from torch.utils.data import DataLoader, Dataset

    return isinstance(x, (DataLoader, Dataset))


def materialise(data: Any, name: str = "x") -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs (and labels, if the items carry them) of a ``DataLoader`` or ``Dataset`` as float32 / int64 arrays.

    Items or batches are ``x`` or ``(x, y, ...)``; an array or tensor is returned as it is, with no labels.

    Raises:
        TypeError: On dict items or batches (say how to map them), or items of another kind.
    """
    from torch.utils.data import DataLoader

    if not is_data_source(data):
        return data, None
    items = data if isinstance(data, DataLoader) else (data[i] for i in range(len(data)))  # type: ignore[arg-type]
    xs, ys = [], []
    for item in items:
        if isinstance(item, dict):
            raise TypeError(f"{name}: the {type(data).__name__} yields dicts (keys {sorted(item)}); make it yield (x, y) "
                            "tuples, e.g. with a collate_fn returning (batch['image'], batch['label'])")
        x, y = (item[0], item[1] if len(item) > 1 else None) if isinstance(item, (tuple, list)) else (item, None)
        if not isinstance(x, (Tensor, np.ndarray)):
            raise TypeError(f"{name}: items must be arrays or tensors (or (x, y) pairs of them), got {type(x).__name__}")
        batched = isinstance(data, DataLoader)
        xs.append(to_numpy(x) if batched else to_numpy(x)[None])
        if y is not None:
            ys.append(np.atleast_1d(to_numpy(y)))
    if not xs:
        raise ValueError(f"{name}: the {type(data).__name__} is empty")
    x_all = np.concatenate(xs).astype(np.float32, copy=False)
    y_all = np.concatenate(ys).astype(np.int64, copy=False) if len(ys) == len(xs) else None
    return x_all, y_all


def deprecated_progress(progress: bool | None, verbose: bool) -> bool:
    """``verbose``, or the deprecated ``progress`` (0.3's word for it) with a ``DeprecationWarning``."""
    if progress is None:
        return verbose
    import warnings

    warnings.warn("progress= is deprecated since rce-art 0.4: every progress bar is switched by verbose=, as in ART",
                  DeprecationWarning, stacklevel=3)
    return bool(progress)


def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array (detached and moved to CPU for tensors)."""
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_inputs(
    x: Any,
    *,
    name: str = "x",
    input_shape: tuple[int, ...] | None = None,
    clip_values: tuple[float, float] | None = None,
) -> None:
    """Check a batch of inputs: array or tensor, floating, non-empty, finite, right shape, in range.

    Raises:
        TypeError: If ``x`` is not a numpy array or torch tensor of a floating dtype.
        ValueError: If ``x`` is empty, holds NaN/inf, has the wrong per-example shape or
            leaves ``clip_values``.
    """
    if not isinstance(x, (np.ndarray, Tensor)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    is_float = x.is_floating_point() if isinstance(x, Tensor) else np.issubdtype(x.dtype, np.floating)
    if not is_float:
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}; convert it, e.g. x.astype('float32')")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); pass at least one example")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"{name} has per-example shape {tuple(x.shape[1:])}, expected {tuple(input_shape)} "
            f"(the batch dimension comes first)"
        )
    if isinstance(x, Tensor):
        x = x.detach()
    finite = bool(torch.isfinite(x).all()) if isinstance(x, Tensor) else bool(np.isfinite(x).all())
    if not finite:
        raise ValueError(f"{name} contains NaN or infinite values; clean the input before calling")
    if clip_values is not None:
        lo, hi = float(x.min()), float(x.max())
        tol = 1e-5 * max(1.0, abs(clip_values[1] - clip_values[0]))
        if lo < clip_values[0] - tol or hi > clip_values[1] + tol:
            raise ValueError(
                f"{name} has values in [{lo:.4g}, {hi:.4g}], outside clip_values {tuple(clip_values)}; "
                "scale the input to the model's pixel range"
            )


def check_labels(y: Any, n: int, nb_classes: int, *, name: str = "y") -> np.ndarray:
    """Validate labels (integer, or one-hot as ART passes them) and return them as int64 indices.

    Raises:
        TypeError: If ``y`` is not an array or tensor.
        ValueError: On a length mismatch, non-integer values or a label outside ``[0, nb_classes)``.
    """
    if not isinstance(y, (np.ndarray, Tensor, list, tuple)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(y).__name__}")
    y_np = to_numpy(y)
    if y_np.ndim == 2 and y_np.shape[1] == nb_classes and y_np.shape[0] == n:
        y_np = y_np.argmax(axis=1)
    if y_np.ndim != 1 or y_np.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n},) (integer labels) or ({n}, {nb_classes}) (one-hot), got {y_np.shape}"
        )
    if not np.issubdtype(y_np.dtype, np.integer) and (
            not np.all(np.isfinite(y_np)) or np.any(y_np != np.round(y_np))):
            raise ValueError(f"{name} must hold integer class labels, got non-integer values")
    y_int = y_np.astype(np.int64)
    bad = (y_int < 0) | (y_int >= nb_classes)
    if bad.any():
        raise ValueError(
            f"{name} holds labels outside [0, {nb_classes}): e.g. {int(y_int[bad][0])}; "
            f"labels must be class indices of a {nb_classes}-class model"
        )
    return y_int


def check_logits(logits: Tensor) -> None:
    """Validate a ``(N, L)`` logits tensor: floating, ``N >= 1``, ``L >= 2``, finite."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a torch tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, L), got {tuple(logits.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("logits is an empty batch; pass at least one example")
    if logits.shape[1] < 2:
        raise ValueError(f"logits need at least 2 classes, got L={logits.shape[1]}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contain NaN or infinite values")


def check_logits_and_labels(logits: Tensor, y: Tensor) -> None:
    """Validate a ``(N, L)`` logits tensor ([`check_logits`][]) and its ``(N,)`` integer labels for a loss."""
    if not isinstance(logits, Tensor) or not isinstance(y, Tensor):
        raise TypeError("logits and y must be torch tensors")
    check_logits(logits)
    if y.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool):
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (logits.shape[0],):
        raise ValueError(f"y must have shape ({logits.shape[0]},), got {tuple(y.shape)}")
    if bool(((y < 0) | (y >= logits.shape[1])).any()):
        raise ValueError(f"y holds labels outside [0, {logits.shape[1]})")


def _as_number(value: float, name: str) -> float:
    """``float(value)``, or a ``TypeError`` naming ``name`` if it is not a number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    return v


def check_real(value: Any, name: str, *, low: float | None = None, high: float | None = None) -> float:
    """``float(value)`` for a finite real number (Python or numpy; not a bool) strictly inside ``(low, high)``.

    Raises:
        TypeError: If it is not a real number.
        ValueError: If it is not finite or outside the bounds.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v) or (low is not None and v <= low) or (high is not None and v >= high):
        bounds = f" in ({low:g}, {high:g})" if low is not None and high is not None else (
            f" > {low:g}" if low is not None else "")
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}")
    return v


def check_integer(value: Any, name: str, minimum: int) -> int:
    """``int(value)`` for an integer (Python or numpy; not a bool, not a float such as ``3.0``) ``>= minimum``.

    The one integer check of rce-art: every integer parameter goes through it.

    Raises:
        InvalidParameterError: If it is not an integer (e.g. ``2.7`` or ``True``); a ``ValueError`` and a
            ``TypeError``.
        ValueError: If it is below ``minimum``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(value: float, name: str) -> float:
    """Return ``float(value)`` if it is a finite number > 0, else raise ``ValueError``."""
    v = _as_number(value, name)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_nonnegative(value: float, name: str) -> float:
    """Return ``float(value)`` if it is a finite number >= 0, else raise ``ValueError``."""
    v = _as_number(value, name)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


REDUCTIONS = ("mean", "sum", "none")
"""The reductions of torch's losses, accepted by every loss of the package."""


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` if it is one of torch's loss reductions (``"mean"``, ``"sum"``, ``"none"``)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction
