"""Attack evaluation sharded by example: across torchrun processes, or across independent jobs.

Each process (or job) attacks a contiguous slice of the examples ([`rce_art.distributed.shard_slice`][rce_art.distributed.shard_slice],
boundaries on multiples of the attack's batch size, so every batch is one the single-process run would
run) and computes the per-example results of [`example_scores`][rce_art.evaluation.example_scores]. Under torchrun
the slices are gathered in rank order; offline, each job writes its slice with [`save_shard`][] and
[`load_shards`][] puts them back together. [`report_from_scores`][rce_art.evaluation.report_from_scores] then gives
the record of the whole run: identical to a single-process run for deterministic attacks. (Attacks that
draw random numbers draw them per call, so a shard's random start differs from the whole run's.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rce_art._files import atomic_write
from rce_art.distributed import all_gather_concat, shard_slice
from rce_art.evaluation.protocol import example_scores

__all__ = ["SHARD_FORMAT", "load_shards", "save_shard", "sharded_example_scores"]

SHARD_FORMAT = "rce-art-shard/1"


def sharded_example_scores(
    attack: Callable[[np.ndarray], np.ndarray],
    detectors: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    clip_values: tuple[float, float],
    *,
    block: int = 256,
    shard: tuple[int, int] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-example results of attacking a shard of ``x``, scored by one or more detectors.

    Args:
        attack: ``attack(x_slice) -> x_adv_slice`` (e.g. a ``PaperAttack``'s ``generate``), run once per slice.
        detectors: Fitted K-density detectors on the attacked model, by name (e.g. one per bandwidth).
        x: All clean inputs ``(N, ...)`` (every process or job holds them; each attacks its slice).
        y: Their true labels ``(N,)``.
        clip_values: Pixel range.
        block: Granularity of the slices: the attack's batch size.
        shard: ``(i, n)``: job ``i`` of ``n`` independent jobs (offline form; nothing is gathered).
            ``None``: this process's slice under torchrun, gathered so that every process returns the
            results of all ``N`` examples (in a single process: all of them, unsharded).

    Returns:
        ``{name: example_scores(...)}`` of the slice (``shard`` given) or of all examples.
    """
    sl = shard_slice(len(x), *(shard if shard is not None else (None, None)), block=block)
    xs, ys = np.asarray(x)[sl], np.asarray(y)[sl]
    x_adv = attack(xs) if len(xs) else xs
    parts = {name: example_scores(det, xs, x_adv, ys, clip_values) for name, det in detectors.items()}
    return parts if shard is not None else all_gather_concat(parts)  # one collective for every detector


def _encode(a: np.ndarray) -> dict[str, Any]:
    # floats as Python floats: JSON writes their shortest exact repr, so a round trip is bit-exact
    return {"dtype": str(a.dtype), "values": a.tolist()}


def save_shard(path: str | Path, parts: Mapping[str, Mapping[str, Any]], *, shard: tuple[int, int], n: int,
               meta: Mapping[str, Any]) -> Path:
    """Write one job's results as JSON (no pickle).

    Args:
        path: Output file.
        parts: ``{key: {"scores": example_scores(...), "info": {...}}}``: one entry per evaluated
            combination (e.g. ``"RCE|fgsm|auto"``); ``info`` holds per-job numbers (timings, settings).
        shard: ``(i, n_shards)``.
        n: Total number of examples of the whole run.
        meta: Settings that every job of the run must share (checked by [`load_shards`][]).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": SHARD_FORMAT, "shard": list(shard), "n": int(n), "meta": dict(meta),
           "parts": {k: {"scores": {f: _encode(np.asarray(v)) for f, v in p["scores"].items()},
                         "info": dict(p.get("info", {}))} for k, p in parts.items()}}
    atomic_write(path, json.dumps(doc))
    return path


def load_shards(paths: Sequence[str | Path]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Read the JSON files of every job of a run and concatenate their scores in shard order.

    Args:
        paths: The files written by [`save_shard`][], in any order.

    Returns:
        ``(parts, meta)``: ``parts[key] = {"scores": concatenated arrays, "info": [info of shard 0, ...]}``.

    Raises:
        ValueError: If a file is not a shard file, shards are missing or repeated, or the jobs disagree on
            the number of examples, the settings or the evaluated combinations.
    """
    docs = [json.loads(Path(p).read_text()) for p in paths]
    if not docs:
        raise ValueError("no shard files given")
    for p, d in zip(paths, docs):
        if d.get("format") != SHARD_FORMAT:
            raise ValueError(f"{p} is not an rce-art shard file (format {d.get('format')!r})")
    total = docs[0]["shard"][1]
    found = sorted(d["shard"][0] for d in docs)
    if any(d["shard"][1] != total for d in docs) or found != list(range(total)):
        raise ValueError(f"need shards 0..{total - 1} of {total} exactly once, got {found} "
                         f"(of {sorted({d['shard'][1] for d in docs})})")
    docs.sort(key=lambda d: d["shard"][0])
    for d in docs[1:]:
        if d["n"] != docs[0]["n"] or d["meta"] != docs[0]["meta"] or set(d["parts"]) != set(docs[0]["parts"]):
            raise ValueError(f"shard {d['shard'][0]} was run with other settings than shard 0: "
                             "merge only the jobs of one run")
    parts = {}
    for key in docs[0]["parts"]:
        fields = docs[0]["parts"][key]["scores"]
        scores = {f: np.concatenate([np.asarray(d["parts"][key]["scores"][f]["values"],
                                                dtype=fields[f]["dtype"]) for d in docs]) for f in fields}
        if len(scores["y"]) != docs[0]["n"]:
            raise ValueError(f"{key}: the shards hold {len(scores['y'])} examples, the run has {docs[0]['n']}")
        parts[key] = {"scores": scores, "info": [d["parts"][key]["info"] for d in docs]}
    return parts, docs[0]["meta"]
