"""Plain-text rendering of result records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["markdown_table"]


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
