"""Plain-text tables of result records: the one Markdown table renderer of rce-art (the reproduction scripts and
the evaluation report both use it), and records written as JSON and CSV through the one atomic writer."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rce_art._files import atomic_write

__all__ = ["escape_cell", "markdown_rows", "markdown_table", "write_records"]


def _fmt(v: Any, digits: int) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def escape_cell(text: Any) -> str:
    """Text safe in a Markdown table cell or line: whitespace collapsed, HTML special characters, pipes and
    backticks escaped (a crafted name cannot inject markup or break the table)."""
    s = " ".join(str(text).split())
    return html.escape(s, quote=False).replace("|", "\\|").replace("`", "\\`")


def markdown_rows(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table of already formatted cells, every cell escaped ([`escape_cell`][]).

    Args:
        head: Column titles.
        rows: One sequence of cells per row.

    Returns:
        The table, one line per row, without a trailing newline.
    """
    lines = ["| " + " | ".join(escape_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(escape_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(records: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 3) -> str:
    """Render records as a Markdown table with the given columns.

    Args:
        records: One dict per row.
        columns: The keys shown, in order (a missing value is shown as ``-``).
        digits: Decimal places of float values (NaN shown as ``n/a``).

    Returns:
        The table ([`markdown_rows`][]).
    """
    return markdown_rows(columns, [[_fmt(r.get(c, "-"), digits) for c in columns] for r in records])


def write_records(records: Sequence[dict[str, Any]], path_stem: Any) -> tuple[Path, Path]:
    """Write records to ``<stem>.json`` and ``<stem>.csv`` (union of keys as CSV columns), each atomically.

    Args:
        records: One dict per row.
        path_stem: Path without suffix.

    Returns:
        ``(json_path, csv_path)``.
    """
    stem = Path(path_stem)
    json_path, csv_path = stem.with_suffix(".json"), stem.with_suffix(".csv")
    atomic_write(json_path, json.dumps(list(records), indent=2, default=float))
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(records)
    atomic_write(csv_path, buf.getvalue())
    return json_path, csv_path
