"""Crash-safe, resumable storage of results in one folder: the one store of rce-art (``rce_art.evaluate``'s results
folders and the reproduction scripts' shard runs).

A manifest (``manifest.json``) holds the evaluation's identity ([`rce_art.report.identity`][]): everything the
numbers depend on. It is created exclusively (two runs starting on one empty folder cannot both write it), and a
folder made with another identity is refused with the keys that differ. Each unit of work (one detector, one
operating point, one batch of inputs) writes one ``units/<key>.json`` file atomically (a temporary file, flushed and
synced, then renamed over the target; created with the permissions the umask allows), carrying a SHA-256 of its
content and the id of the evaluation that made it: a truncated, edited or foreign unit file is detected on load,
never silently used.

Better than AutoAttack's state file (rewritten in place, saved once a minute, no check that the model or data are
the same): here at most the unit in flight is lost, and results of other settings, data or model are never mixed.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rce_art._files import atomic_save, atomic_write

__all__ = ["PROBE_RTOL", "CorruptResultError", "ResultStore", "atomic_save", "atomic_write", "digest_arrays", "identity_differences", "json_sha256", "package_versions", "read_unit"]


PROBE_RTOL = 1e-3
"""Relative tolerance of the probe comparison (the same model on another machine, thread count or device computes
logits that differ in the last float32 digits; a changed ``forward`` moves them far more)."""


def json_sha256(obj: Any) -> str:
    """SHA-256 of an object as stored (JSON with sorted keys): an identity's hash, a unit's checksum."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=float).encode()).hexdigest()


def _probe_close(a: Any, b: Any) -> bool:
    try:
        pa, pb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    except (TypeError, ValueError):
        return False
    if pa.shape != pb.shape:
        return False
    scale = max(float(np.abs(pa).max(initial=0.0)), 1.0)
    return bool(np.all(np.abs(pa - pb) <= PROBE_RTOL * scale))


def identity_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys in which two identities differ (the model's prediction probe compared within a tolerance,
    everything else exactly), e.g. ``["eps", "model.probe", "versions.torch"]``."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if k == "model" and isinstance(a, dict) and isinstance(b, dict):
            for part in sorted(set(a) | set(b)):
                same = (_probe_close(a.get(part), b.get(part)) if part == "probe" else a.get(part) == b.get(part))
                if not same:
                    out.append(f"model.{part}")
        elif k == "versions" and isinstance(a, dict) and isinstance(b, dict):
            out += [f"versions.{p}" for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)]
        elif a != b:
            out.append(k)
    return out


class CorruptResultError(ValueError):
    """A results file is truncated, corrupted or does not belong to this evaluation."""


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
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("rce-art", "torch", "adversarial-robustness-toolbox", "numpy", "scipy", "scikit-learn", "foolbox",
                 "torchattacks", "pytorch-ood"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


class ResultStore:
    """The results folder of one evaluation.

    Args:
        root: The folder (created if missing).
        identity: What results depend on ([`rce_art.report.identity`][]); a folder made with another identity
            is refused. The manifest's identity (the first writer's) is the one kept.

    Raises:
        PermissionError: If the folder cannot be written (said plainly, with the path).
        ValueError: If the folder holds results of another evaluation.
        CorruptResultError: If its manifest is corrupted.
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
        text = json.dumps({"identity": identity, "sha256": json_sha256(identity)}, indent=1, sort_keys=True)
        if not atomic_write(self.root / self.MANIFEST, text, exclusive=True):  # another run created it first
            identity = self.check_manifest(self.root, identity)
        self.identity = identity
        self.run_id = json_sha256(identity)

    @classmethod
    def check_manifest(cls, root: str | Path, identity: dict[str, Any]) -> dict[str, Any]:
        """The identity stored in ``root``, after checking it is ``identity`` (see [`identity_differences`][]).

        Raises:
            ValueError: If it differs (naming the keys).
        """
        old = cls.read_manifest(root)["identity"]
        diff = identity_differences(old, json.loads(json.dumps(identity, sort_keys=True, default=float)))
        if diff:
            raise ValueError(f"{root} holds results of another evaluation (different {', '.join(diff)}); use a new "
                             "--out folder, or delete this one to start over (results are never mixed)")
        return old

    @classmethod
    def read_manifest(cls, root: str | Path) -> dict[str, Any]:
        """The manifest of a results folder.

        Raises:
            FileNotFoundError: If there is none.
            CorruptResultError: If it does not check.
        """
        path = Path(root) / cls.MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{root} has no {cls.MANIFEST}: not a results folder of rce-art evaluate")
        try:
            m = json.loads(path.read_text())
            ok = m["sha256"] == json_sha256(m["identity"]) and isinstance(m["identity"], dict)
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptResultError(f"{path} is corrupted ({e}); delete the folder to start over") from e
        if not ok:
            raise CorruptResultError(f"{path} does not match its checksum; delete the folder to start over")
        return m

    def _path(self, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in key)
        return self.root / "units" / f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.json"

    def has(self, key: str) -> bool:
        """Whether the unit ``key`` is stored (and checks)."""
        return self.get(key) is not None

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result of unit ``key``, or ``None`` if not computed yet.

        Raises:
            CorruptResultError: If its file is truncated, corrupted, holds another unit or was written by another
                evaluation.
        """
        path = self._path(key)
        if not path.exists():
            return None
        stored, run, data = read_unit(path)
        if stored != key:
            raise CorruptResultError(f"results file {path} holds unit {stored!r}, not {key!r}; delete it and run the "
                                     "same command again to recompute it")
        if run != self.run_id:
            raise CorruptResultError(f"results file {path} was written by another evaluation than the one in "
                                     f"{self.MANIFEST} (other settings, data or model); use a new --out folder, or "
                                     "delete this one to start over (results are never mixed)")
        return data

    def put(self, key: str, data: dict[str, Any]) -> None:
        """Store the result of unit ``key`` atomically, bound to this evaluation."""
        atomic_write(self._path(key), json.dumps({"key": key, "run": self.run_id, "data": data, "sha256": json_sha256(data)},
                                                 default=float))

    @classmethod
    def open(cls, root: str | Path, identity: dict[str, Any] | None = None) -> ResultStore:
        """An existing results folder, read-only (nothing is written), checked against ``identity`` if given.

        Raises:
            FileNotFoundError: If it is not a results folder.
            ValueError: If it belongs to another evaluation than ``identity``.
            CorruptResultError: If its manifest is corrupted.
        """
        store = cls.__new__(cls)
        store.root = Path(root)
        store.identity = (cls.read_manifest(root)["identity"] if identity is None
                          else cls.check_manifest(root, identity))
        store.run_id = json_sha256(store.identity)
        return store

    def stray_units(self, keys: Iterable[str]) -> list[str]:
        """File names of the stored units that are not among ``keys``."""
        known = {self._path(k).name for k in keys}
        return [f.name for f in sorted((self.root / "units").glob("*.json")) if f.name not in known]

    def copy_from(self, other: str | Path | ResultStore, keys: Iterable[str] | None = None) -> int:
        """Copy units stored in another results folder of the same evaluation; return how many.

        Args:
            other: The folder (checked against this evaluation's identity), or a store opened on it.
            keys: The units to copy; ``None``: every unit stored there.

        Raises:
            ValueError: If ``other`` belongs to another evaluation.
            CorruptResultError: If one of its units does not check or belongs to another evaluation.
        """
        src = other if isinstance(other, ResultStore) else ResultStore.open(other, self.identity)
        if keys is None:
            keys = [read_unit(f)[0] for f in sorted((src.root / "units").glob("*.json"))]
        copied = 0
        for k in sorted(set(keys)):
            data = src.get(k)
            if data is not None:
                self.put(k, data)
                copied += 1
        return copied


def read_unit(path: Path) -> tuple[str, str | None, dict[str, Any]]:
    """``(key, run id, data)`` of a unit file, checked against its SHA-256.

    Raises:
        CorruptResultError: If the file is truncated, corrupted or edited.
    """
    try:
        rec = json.loads(Path(path).read_text())
        key, run, data, ok = rec["key"], rec.get("run"), rec["data"], rec["sha256"] == json_sha256(rec["data"])
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptResultError(f"results file {path} is truncated or corrupted ({type(e).__name__}: {e}); delete it "
                                 "and run the same command again to recompute it") from e
    if not ok or not isinstance(data, dict):
        raise CorruptResultError(f"results file {path} does not match its checksum (edited or corrupted); delete it "
                                 "and run the same command again to recompute it")
    return key, run, data
