"""Plain-text rendering of result records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["markdown_table", "write_records"]


def _fmt(v: Any, digits: int) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def markdown_table(records: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 3) -> str:
    """Render records as a Markdown table with the given columns (missing values shown as ``-``)."""
    head = "| " + " | ".join(columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    rows = ["| " + " | ".join(_fmt(r.get(c, "-"), digits) for c in columns) + " |" for r in records]
    return "\n".join([head, sep, *rows])


def write_records(records: Sequence[dict[str, Any]], path_stem: Any) -> tuple[Any, Any]:
    """Write records to ``<stem>.json`` and ``<stem>.csv`` (union of keys as CSV columns); return both paths."""
    import csv
    import json
    from pathlib import Path

    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = stem.with_suffix(".json"), stem.with_suffix(".csv")
    json_path.write_text(json.dumps(list(records), indent=2, default=float))
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(records)
    return json_path, csv_path
