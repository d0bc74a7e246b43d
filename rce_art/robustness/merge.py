"""Merge the results folders of sharded runs (``rce-art evaluate --shard i/n``) into one report."""

from __future__ import annotations

from pathlib import Path

from rce_art.robustness.evaluate import plan_units
from rce_art.robustness.report import EvaluationReport, build_report
from rce_art.robustness.store import ResultStore

__all__ = ["merge"]


def merge(out: str | Path, shards: list[str | Path]) -> EvaluationReport:
    """Copy the units of every shard folder into ``out`` and write the report there.

    The result is the report one process would have written: the same units, computed the same way.

    Raises:
        ValueError: If the folders belong to different evaluations, or units are missing.
        FileNotFoundError: If a folder is not a results folder.
    """
    manifests = [ResultStore.read_manifest(s) for s in shards]
    identity = manifests[0]["identity"]
    for s, m in zip(shards, manifests):
        if m["identity"] != identity:
            diff = sorted(k for k in set(m["identity"]) | set(identity) if m["identity"].get(k) != identity.get(k))
            raise ValueError(f"{s} is a shard of another evaluation than {shards[0]} (different {', '.join(diff)})")
    store = ResultStore(out, identity)
    for s in shards:
        if Path(s).resolve() != Path(out).resolve():
            store.copy_from(s)
    settings, labels = store.get("settings"), store.get("labels")
    if settings is None or labels is None:
        raise ValueError(f"no settings stored in {shards}: not folders written by rce-art evaluate")
    units = plan_units(list(identity["detectors"]), identity["n"], identity["batch_size"], identity["fprs"],
                       identity["diagnostics"])
    results = {u: store.get(u) for u in units}
    report = build_report(settings, units, results, labels["y"])
    report.write(out)
    return report
