"""What an evaluation's numbers depend on: its identity, the key of its results folder.

A results folder is a cache, and a cache must key on everything its values depend on: the settings, the data (the
attacked and held-out inputs, and the data detectors given by name are fitted on), the model (its weights AND what
its ``forward`` computes: a prediction probe on a fixed slice of the inputs), the classifier's clip values and
preprocessing, the detectors (their class, parameters and fitted state) and the versions of the packages that
compute the numbers. Two runs or shards with different identities are never mixed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

__all__ = ["PROBE_INPUTS", "detector_digest", "identity_differences", "json_sha256", "prediction_probe",
           "preprocessing_spec"]

PROBE_INPUTS = 8
"""Inputs (the first of ``x``) whose logits identify what the model computes."""
PROBE_RTOL = 1e-3
"""Relative tolerance of the probe comparison (the same model on another machine, thread count or device computes
logits that differ in the last float32 digits; a changed ``forward`` moves them far more)."""


def json_sha256(obj: Any) -> str:
    """SHA-256 of an object as stored (JSON with sorted keys): an identity's hash, a unit's checksum."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=float).encode()).hexdigest()


def prediction_probe(classifier: Any, x: np.ndarray) -> list[list[float]]:
    """Logits of the classifier (with its preprocessing, as ART's ``predict`` computes them) on the first
    [`PROBE_INPUTS`][] inputs, rounded to 6 significant digits."""
    out = np.asarray(classifier.predict(np.asarray(x[:PROBE_INPUTS], np.float32)), np.float64)
    return [[float(f"{v:.6g}") for v in row] for row in out]


def detector_digest(detector: Any) -> str:
    """SHA-256 of a fitted detector's state (its class, parameters, threshold, and every fitted tensor)."""
    import torch

    meta, tensors = detector._fitted_state()  # rce-art's own detector classes
    h = hashlib.sha256(type(detector).__name__.encode())
    h.update(json.dumps({"params": {k: repr(v) for k, v in detector.fit_params_.items()}, "fitted": meta},
                        sort_keys=True, default=repr).encode())
    for k in sorted(tensors):
        t = tensors[k].detach().to("cpu")
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update((t.double() if t.is_floating_point() else t.to(torch.int64)).contiguous().numpy().tobytes())
    return h.hexdigest()


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


def preprocessing_spec(classifier: Any) -> list[dict[str, Any]]:
    """The ART estimator's preprocessing operations and defences, by class and parameter values (public
    attributes: ``preprocessing_operations``, each operation's ``params``)."""
    ops = [*(getattr(classifier, "preprocessing_operations", None) or []),
           *(getattr(classifier, "postprocessing_defences", None) or [])]
    out = []
    for op in ops:
        params: dict[str, Any] = {}
        for p in getattr(op, "params", []) or []:
            v = getattr(op, p, None)
            params[p] = (np.asarray(v, dtype=np.float64).tolist() if isinstance(v, (np.ndarray, np.generic, list, tuple))
                         and np.asarray(v).dtype.kind in "fiub" else repr(v))
        out.append({"class": type(op).__name__, "params": params})
    return out
