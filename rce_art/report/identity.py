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

from rce_art.evaluation.store import identity_differences, json_sha256

__all__ = ["PROBE_INPUTS", "detector_digest", "identity_differences", "json_sha256", "prediction_probe",
           "preprocessing_spec"]

PROBE_INPUTS = 8
"""Inputs (the first of ``x``) whose logits identify what the model computes."""



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
