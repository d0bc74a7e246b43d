"""Merge the results folders of sharded runs (``rce-art evaluate --shard i/n``) into one report."""

from __future__ import annotations

import json
from pathlib import Path

from rce_art.evaluation.store import ResultStore
from rce_art.report.model import EvaluationReport, build_report
from rce_art.report.units import plan_units

__all__ = ["merge"]


def merge(out: str | Path, shards: list[str | Path]) -> EvaluationReport:
    """Copy the planned units of every shard folder into ``out`` and write the report there.

    The result is the report one process would have written: the same units, computed the same way. Every shard
    must belong to one evaluation (the same identity: settings, data, model, detectors and package versions), hold
    the same settings and no unit outside the plan; everything is checked before ``out`` is written.

    Args:
        out: The merged results folder (may be one of the shards).
        shards: The shards' results folders.

    Raises:
        ValueError: If the folders belong to different evaluations, hold different settings or units outside the
            plan, or units are missing.
        FileNotFoundError: If a folder is not a results folder.
        rce_art.report.CorruptResultError: If a unit does not check or belongs to another evaluation.
    """
    if not shards:
        raise ValueError("merge needs at least one shard folder")
    first = ResultStore.open(shards[0])
    stores = [first] + [ResultStore.open(s, first.identity) for s in shards[1:]]  # refuses another evaluation
    identity = first.identity
    missing = [k for k in ("n", "batch_size", "fprs", "diagnostics", "detectors") if k not in identity]
    if missing:
        raise ValueError(f"{shards[0]} was written by another version of rce-art evaluate (no {missing[0]!r} in its "
                         "manifest); run the shards again")
    units = plan_units(list(identity["detectors"]), identity["n"], identity["batch_size"], identity["fprs"],
                       identity["diagnostics"], identity.get("curve_fprs", []), bool(identity.get("binarization")))
    keys = [*map(str, units), "settings", "labels"]
    settings = None
    for s, src in zip(shards, stores):
        stray = src.stray_units(keys)
        if stray:
            raise ValueError(f"{s} holds units that are not part of this evaluation ({stray[0]}, ...): not a shard "
                             "written by rce-art evaluate with these settings; remove them or the folder")
        theirs = src.get("settings")
        if theirs is not None and settings is not None and json.dumps(theirs, sort_keys=True) != json.dumps(
                settings, sort_keys=True):
            raise ValueError(f"{s} holds other settings than {shards[0]} (same identity, different settings: written "
                             "by another version of rce-art); run the shards again with one version")
        settings = theirs if settings is None else settings
    found: dict[str, tuple[int, dict]] = {}  # each unit read (and checked) once, from the first shard holding it
    for i, src in enumerate(stores):
        for k in keys:
            if k not in found and (data := src.get(k)) is not None:
                found[k] = (i, data)
    absent = [str(u) for u in units if str(u) not in found]
    if absent:
        raise ValueError(f"{len(absent)} units have no results yet (e.g. {absent[0]!r}); run the remaining shards, then "
                         "merge again")
    if settings is None or "labels" not in found:
        raise ValueError(f"no settings stored in {[str(s) for s in shards]}: not folders written by rce-art evaluate")
    store = ResultStore(out, identity)
    here = Path(out).resolve()
    for k, (i, data) in found.items():
        if Path(shards[i]).resolve() != here:
            store.put(k, data)
    report = build_report(settings, units, {str(u): found[str(u)][1] for u in units}, found["labels"][1]["y"])
    report.write(out)
    return report
