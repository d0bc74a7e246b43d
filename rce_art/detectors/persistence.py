"""Saving and loading fitted detectors: tensors as safetensors, everything else as JSON metadata.

Nothing is ever unpickled: a file holds named tensors and one JSON string under the key
``"rce_art"`` with the detector's format tag, constructor parameters and fitted scalars.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["check_fingerprint", "load_state", "model_fingerprint", "read_format", "save_state"]


def model_fingerprint(model: nn.Module) -> dict[str, str]:
    """What identifies the model a detector was fitted on: its architecture (class, parameter names and shapes)
    and a SHA-256 digest of its parameters and buffers (float32, in ``state_dict`` order)."""
    arch = hashlib.sha256()
    weights = hashlib.sha256()
    arch.update(type(model).__name__.encode())
    with torch.no_grad():
        for name, t in model.state_dict().items():
            arch.update(f"{name}:{tuple(t.shape)};".encode())
            weights.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return {"class": type(model).__name__, "architecture": arch.hexdigest(), "weights": weights.hexdigest()}


def check_fingerprint(path: str | Path, saved: dict[str, str] | None, model: nn.Module, strict: bool) -> None:
    """Refuse (``strict``) or warn when a detector file is loaded onto another model than it was fitted on.

    Raises:
        ValueError: On another architecture, or (``strict``) other weights.
    """
    if not saved:
        warnings.warn(f"{path} holds no model fingerprint (written before rce-art 0.4): it cannot be checked that "
                      "the classifier is the model the detector was fitted on", UserWarning, stacklevel=3)
        return
    now = model_fingerprint(model)
    if now["architecture"] != saved["architecture"]:
        raise ValueError(f"{path} was fitted on another model ({saved['class']}, another architecture) than the "
                         f"classifier given ({now['class']}): its kernels, statistics and threshold do not apply; "
                         "load it onto the model it was fitted on, or fit a new detector")
    if now["weights"] != saved["weights"]:
        msg = (f"{path} was fitted on a model with other weights than the classifier given (same architecture, "
               "e.g. retrained or untrained): its scores and threshold do not apply to this model; fit it again")
        if strict:
            raise ValueError(msg + " (or load(..., strict=False) to attach it anyway, with a warning)")
        warnings.warn(msg, UserWarning, stacklevel=3)


def save_state(path: str | Path, format_tag: str, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
    """Write ``tensors`` and ``meta`` (JSON-serialisable, with ``format_tag``) to ``path``.

    Raises:
        TypeError: If ``meta`` is not JSON-serialisable.
    """
    from safetensors.torch import save_file

    try:
        meta_json = json.dumps({"format": format_tag, **meta})
    except TypeError as e:
        raise TypeError(f"detector metadata must be JSON-serialisable: {e}") from None
    plain = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}  # no shared storage
    save_file(plain, str(path), metadata={"rce_art": meta_json})


def read_format(path: str | Path) -> str:
    """The format tag of a detector file (e.g. ``"rce_art.KDensityDetector/1"``), without reading its tensors.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not an rce-art detector file.
    """
    with _open(path) as f:
        return str(_meta(path, f).get("format"))


def _open(path: str | Path) -> Any:
    from safetensors import safe_open

    if not Path(path).is_file():
        raise FileNotFoundError(f"no detector file at {path}")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as e:  # noqa: BLE001 (safetensors raises its own error types for foreign files)
        raise ValueError(f"{path} is not an rce-art detector file (not a safetensors file: {e}); detector files are "
                         "written by detector.save(path), never pickles or torch checkpoints") from None


def _meta(path: str | Path, f: Any) -> dict[str, Any]:
    meta_raw = (f.metadata() or {}).get("rce_art")
    if meta_raw is None:
        raise ValueError(f"{path} is not a file written by an rce-art detector's save()")
    return json.loads(meta_raw)


def load_state(path: str | Path, format_tag: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read ``(meta, tensors)`` written by [`save_state`][] with the same ``format_tag``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not an rce-art detector file of that format.
    """
    with _open(path) as f:
        meta = _meta(path, f)
        found = str(meta.get("format"))
        if found != format_tag:
            if found.split("/")[0] == format_tag.split("/")[0]:
                raise ValueError(f"{path} was written by another version of rce-art (format {found!r}, this version "
                                 f"reads {format_tag!r}): its scores are not this version's; fit the detector again")
            raise ValueError(f"{path} has format {found!r}, expected {format_tag!r}")
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    return meta, tensors
