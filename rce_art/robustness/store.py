"""Crash-safe, resumable storage of an evaluation's results in one folder.

A manifest (``manifest.json``) holds what the results depend on: the settings, a digest of the data, the model's
fingerprint, the package versions. Each unit of work (one detector, one operating point, one batch of inputs)
writes one ``units/<key>.json`` file, atomically (a temporary file, flushed and synced, then renamed over the
target): a process killed at any moment leaves either the complete file or none. Every unit file carries a
SHA-256 of its content, so a corrupted or truncated file is detected on load, never silently used.

Better than AutoAttack's state file (rewritten in place, saved once a minute, no check that the model or data are
the same): here at most the unit in flight is lost, and a folder made with other settings, data or model is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["CorruptResultError", "ResultStore", "atomic_write", "digest_arrays", "package_versions", "read_unit"]


class CorruptResultError(ValueError):
    """A results file is truncated, corrupted or does not belong to this evaluation."""


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, synced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=float).encode()).hexdigest()


def digest_arrays(*arrays: Any) -> str:
    """SHA-256 of arrays' dtypes, shapes and bytes (the identity of the data an evaluation ran on)."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages results depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("rce-art", "torch", "adversarial-robustness-toolbox", "numpy", "foolbox", "torchattacks"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


class ResultStore:
    """The results folder of one evaluation.

    Args:
        root: The folder (created if missing).
        identity: What results depend on (settings, data digest, model fingerprint); a folder made with another
            identity is refused.

    Raises:
        PermissionError: If the folder cannot be written (said plainly, with the path).
        ValueError: If the folder holds results of another evaluation.
    """

    MANIFEST = "manifest.json"

    def __init__(self, root: str | Path, identity: dict[str, Any]) -> None:
        self.root = Path(root)
        identity = json.loads(json.dumps(identity, sort_keys=True, default=float))  # as stored: tuples become lists
        try:
            (self.root / "units").mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-test-"):
                pass  # a name of its own per process: concurrent ranks do not race
        except OSError as e:
            raise PermissionError(f"cannot write the results folder {self.root}: {e.strerror or e}; pass another "
                                  "--out (out=) that you can write to") from e
        path = self.root / self.MANIFEST
        if path.exists():
            old = self.read_manifest(self.root)
            diff = sorted(k for k in set(old["identity"]) | set(identity)
                          if old["identity"].get(k) != identity.get(k))
            if diff:
                raise ValueError(f"{self.root} holds results of another evaluation (different {', '.join(diff)}); "
                                 "use a new --out folder, or delete this one to start over (results are never mixed)")
        else:
            atomic_write(path, json.dumps({"identity": identity, "versions": package_versions(),
                                           "sha256": _hash(identity)}, indent=1, sort_keys=True))
        self.identity = identity

    @classmethod
    def read_manifest(cls, root: str | Path) -> dict[str, Any]:
        """The manifest of a results folder.

        Raises:
            FileNotFoundError: If there is none; CorruptResultError: if it does not check.
        """
        path = Path(root) / cls.MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{root} has no {cls.MANIFEST}: not a results folder of rce-art evaluate")
        try:
            m = json.loads(path.read_text())
            ok = m["sha256"] == _hash(m["identity"])
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptResultError(f"{path} is corrupted ({e}); delete the folder to start over") from e
        if not ok:
            raise CorruptResultError(f"{path} does not match its checksum; delete the folder to start over")
        return m

    def _path(self, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in key)
        return self.root / "units" / f"{safe}.json"

    def has(self, key: str) -> bool:
        """Whether the unit ``key`` is stored (and checks)."""
        return self.get(key) is not None

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result of unit ``key``, or ``None`` if not computed yet.

        Raises:
            CorruptResultError: If its file is truncated, corrupted or holds another unit.
        """
        path = self._path(key)
        if not path.exists():
            return None
        stored, data = read_unit(path)
        if stored != key:
            raise CorruptResultError(f"results file {path} holds unit {stored!r}, not {key!r}; delete it and run the "
                                     "same command again to recompute it")
        return data

    def put(self, key: str, data: dict[str, Any]) -> None:
        """Store the result of unit ``key`` atomically."""
        atomic_write(self._path(key), json.dumps({"key": key, "data": data, "sha256": _hash(data)}, default=float))

    def copy_from(self, other: str | Path) -> int:
        """Copy every (checked) unit of another results folder of the same evaluation; return how many."""
        files = sorted((Path(other) / "units").glob("*.json"))
        for f in files:
            key, data = read_unit(f)
            self.put(key, data)
        return len(files)


def read_unit(path: Path) -> tuple[str, dict[str, Any]]:
    """``(key, data)`` of a unit file, checked against its SHA-256.

    Raises:
        CorruptResultError: If the file is truncated, corrupted or edited.
    """
    try:
        rec = json.loads(Path(path).read_text())
        key, data, ok = rec["key"], rec["data"], rec["sha256"] == _hash(rec["data"])
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptResultError(f"results file {path} is truncated or corrupted ({type(e).__name__}: {e}); delete it "
                                 "and run the same command again to recompute it") from e
    if not ok:
        raise CorruptResultError(f"results file {path} does not match its checksum (edited or corrupted); delete it "
                                 "and run the same command again to recompute it")
    return key, data
