"""Saving and loading fitted detectors: tensors as safetensors, everything else as JSON metadata.

Nothing is ever unpickled: a file holds named tensors and one JSON string under the key
``"rce_art"`` with the detector's format tag, constructor parameters and fitted scalars.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

__all__ = ["load_state", "save_state"]


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


def load_state(path: str | Path, format_tag: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read ``(meta, tensors)`` written by [`save_state`][] with the same ``format_tag``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not an rce-art detector file of that format.
    """
    from safetensors import safe_open

    if not Path(path).is_file():
        raise FileNotFoundError(f"no detector file at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta_raw = (f.metadata() or {}).get("rce_art")
        if meta_raw is None:
            raise ValueError(f"{path} is not a file written by an rce-art detector's save()")
        meta = json.loads(meta_raw)
        found = str(meta.get("format"))
        if found != format_tag:
            if found.split("/")[0] == format_tag.split("/")[0]:
                raise ValueError(f"{path} was written by another version of rce-art (format {found!r}, this version "
                                 f"reads {format_tag!r}): its scores are not this version's; fit the detector again")
            raise ValueError(f"{path} has format {found!r}, expected {format_tag!r}")
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    return meta, tensors
