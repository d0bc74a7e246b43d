"""Attack evaluation sharded by example: across torchrun processes, or across independent jobs.

Each process (or job) attacks a contiguous slice of the examples ([`rce_art.distributed.shard_slice`][rce_art.distributed.shard_slice],
boundaries on multiples of the attack's batch size, so every batch is one the single-process run would
run) and computes the per-example results of [`example_scores`][rce_art.evaluation.example_scores]. Under torchrun
the slices are gathered in rank order; offline, each job writes its slice into the run's results folder with
[`save_shard`][] (the store of ``rce_art.evaluate``: atomic, checksummed units bound to the run) and
[`load_shards`][] puts them back together. [`report_from_scores`][rce_art.evaluation.report_from_scores] then gives
the record of the whole run: identical to a single-process run for deterministic attacks. (Attacks that
draw random numbers draw them per call, so a shard's random start differs from the whole run's.)
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rce_art.distributed import all_gather_concat, shard_slice
from rce_art.evaluation.protocol import example_scores
from rce_art.evaluation.store import ResultStore, read_unit

__all__ = ["SHARD_FORMAT", "load_shards", "save_shard", "sharded_example_scores"]

SHARD_FORMAT = "rce_art.ShardRun/2"
"""The identity format of a shard run's results folder."""
LEGACY_FORMAT = "rce-art-shard/1"
"""0.6's one-file-per-job format, read until 0.8."""


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
    """Write one job's results into the run's results folder: the store of ``rce_art.evaluate``
    ([`ResultStore`][rce_art.evaluation.store.ResultStore]), never pickled.

    Every part is one unit, written atomically with a checksum and bound to the run's identity (the number of
    examples and of shards, and ``meta``): the jobs of one run may write one shared folder or folders of their
    own, a job of another run is refused, and a truncated or edited file is detected by [`load_shards`][].

    Args:
        path: The run's results folder (created if missing).
        parts: ``{key: {"scores": example_scores(...), "info": {...}}}``: one entry per evaluated
            combination (e.g. ``"RCE|fgsm|auto"``); ``info`` holds per-job numbers (timings, settings).
        shard: ``(i, n_shards)``.
        n: Total number of examples of the whole run.
        meta: Settings that every job of the run must share (JSON values).

    Returns:
        The folder written.

    Raises:
        ValueError: On a bad ``shard``, or a folder holding another run (naming what differs).
    """
    i, total = (int(v) for v in shard)
    if not 0 <= i < total:
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {tuple(shard)}")
    store = ResultStore(path, {"format": SHARD_FORMAT, "n": int(n), "shards": total, "meta": dict(meta)})
    for position, (key, part) in enumerate(parts.items()):
        store.put(f"{key}#{i}", {"key": key, "position": position, "shard": i,
                                 "scores": {f: _encode(np.asarray(v)) for f, v in part["scores"].items()},
                                 "info": dict(part.get("info", {}))})
    return Path(path)


def load_shards(paths: Sequence[str | Path]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Read the results folders of every job of a run and concatenate their scores in shard order.

    Args:
        paths: The folders written by [`save_shard`][] (one shared folder, or one per job, in any order). Files of
            0.6's format (``rce-art-shard/1``) are still read, with a ``DeprecationWarning`` (until 0.8).

    Returns:
        ``(parts, meta)``: ``parts[key] = {"scores": concatenated arrays, "info": [info of shard 0, ...]}``, in the
        order the jobs wrote them.

    Raises:
        FileNotFoundError: If a path is not a results folder.
        ValueError: If the folders hold different runs, a shard is missing, or the jobs disagree on the evaluated
            combinations.
        CorruptResultError: If a unit is truncated, edited or written by another run.
    """
    if not paths:
        raise ValueError("no shard folders given")
    if all(Path(p).is_file() for p in paths):
        return _load_legacy_files(paths)
    first = ResultStore.open(paths[0])
    stores = [first] + [ResultStore.open(p, first.identity) for p in paths[1:]]  # refuses another run
    ident = first.identity
    if ident.get("format") != SHARD_FORMAT:
        raise ValueError(f"{paths[0]} is not a shard run of the reproduction scripts (its identity has format "
                         f"{ident.get('format')!r}); pass the folders written by --shard")
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for store in stores:
        for f in sorted((store.root / "units").glob("*.json")):
            data = store.get(read_unit(f)[0])  # checks the checksum and that the unit belongs to this run
            assert data is not None
            found.setdefault(data["key"], {})[int(data["shard"])] = data
    total, parts = int(ident["shards"]), {}
    for key, shards in sorted(found.items(), key=lambda kv: min(d["position"] for d in kv[1].values())):
        if sorted(shards) != list(range(total)):
            raise ValueError(f"{key}: need shards 0..{total - 1} of {total} exactly once, got {sorted(shards)}; run "
                             "the missing jobs (or pass every job's folder)")
        docs = [shards[k] for k in range(total)]
        scores = {f: np.concatenate([np.asarray(d["scores"][f]["values"], dtype=docs[0]["scores"][f]["dtype"])
                                     for d in docs]) for f in docs[0]["scores"]}
        if len(scores["y"]) != ident["n"]:
            raise ValueError(f"{key}: the shards hold {len(scores['y'])} examples, the run has {ident['n']}")
        parts[key] = {"scores": scores, "info": [d["info"] for d in docs]}
    return parts, ident["meta"]


def _load_legacy_files(paths: Sequence[str | Path]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """0.6's one-JSON-file-per-job format (removed in 0.8)."""
    warnings.warn("shard files of rce-art 0.6 (rce-art-shard/1) are deprecated (read until 0.8): save_shard now writes "
                  "results folders, checked and atomic", DeprecationWarning, stacklevel=3)
    docs = [json.loads(Path(p).read_text()) for p in paths]
    for p, d in zip(paths, docs):
        if d.get("format") != LEGACY_FORMAT:
            raise ValueError(f"{p} is not an rce-art shard file (format {d.get('format')!r})")
    total = docs[0]["shard"][1]
    found = sorted(d["shard"][0] for d in docs)
    if any(d["shard"][1] != total for d in docs) or found != list(range(total)):
        raise ValueError(f"need shards 0..{total - 1} of {total} exactly once, got {found}")
    docs.sort(key=lambda d: d["shard"][0])
    for d in docs[1:]:
        if d["n"] != docs[0]["n"] or d["meta"] != docs[0]["meta"] or set(d["parts"]) != set(docs[0]["parts"]):
            raise ValueError(f"shard {d['shard'][0]} was run with other settings than shard 0: merge only the jobs "
                             "of one run")
    parts = {}
    for key in docs[0]["parts"]:
        fields = docs[0]["parts"][key]["scores"]
        parts[key] = {"scores": {f: np.concatenate([np.asarray(d["parts"][key]["scores"][f]["values"],
                                                               dtype=fields[f]["dtype"]) for d in docs]) for f in fields},
                      "info": [d["parts"][key]["info"] for d in docs]}
    return parts, docs[0]["meta"]
