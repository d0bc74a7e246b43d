"""Validation of [`evaluate`][rce_art.report.evaluate]'s arguments: every one is checked, with one clear error,
before any work is done or any file is written."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rce_art._validation import check_integer, check_real

__all__ = ["LABEL", "check_fprs", "check_integer", "check_label", "check_real"]

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Detector labels: letters, digits, ``_ . -`` (they name files in the results folder), 64 characters at most."""


def check_fprs(fprs: Any, name: str, *, allow_empty: bool = False) -> tuple[float, ...]:
    """Distinct false-positive rates in ``(0, 1)``, in the order given.

    Raises:
        TypeError: If it is not a sequence of numbers.
        ValueError: If it is empty (unless allowed), has a rate outside ``(0, 1)``, or a rate twice.
    """
    if isinstance(fprs, (str, bytes)) or not isinstance(fprs, Sequence | np.ndarray):
        raise TypeError(f"{name} must be a sequence of false-positive rates, e.g. (0.05, 0.5), got {fprs!r}")
    out = tuple(check_real(f, f"each of {name}", low=0.0, high=1.0) for f in fprs)
    if not out and not allow_empty:
        raise ValueError(f"{name} must hold at least one false-positive rate in (0, 1)")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must be distinct, got {list(out)} (a rate given twice would count its inputs twice)")
    return out


def check_label(label: Any) -> str:
    """A detector label usable as a file name: see [`LABEL`][].

    Raises:
        ValueError: If it is not.
    """
    if not isinstance(label, str) or not LABEL.fullmatch(label):
        raise ValueError(f"detector label {label!r} must be 1-64 letters, digits, '_', '.' or '-' starting with a letter "
                         "or digit (it names files in the results folder); pass a dict with such labels, e.g. "
                         "{'kd': detector}")
    return label


def detector_items(detectors: Any, names: Sequence[str], detector_class: type, prefixes: Sequence[str] = ()
                   ) -> list[tuple[str, Any]]:
    """``(label, detector or name)`` pairs, labels checked and distinct (also ignoring case: they name files).

    A name is one of ``names`` or begins with one of ``prefixes`` (``"ood:energy"``); its label is the name with ``:``
    replaced by ``-`` (``"ood-energy"``).

    Raises:
        ValueError: On no detector, a bad or repeated label, an unknown name.
        TypeError: On something that is neither a detector nor a name.
    """
    if isinstance(detectors, (str, detector_class)):
        detectors = [detectors]
    items = list(detectors.items()) if isinstance(detectors, Mapping) else [
        (d.replace(":", "-") if isinstance(d, str) else type(d).__name__, d) for d in detectors]
    if not items:
        raise ValueError(f"pass at least one detector (a fitted detector or a name among {tuple(names)})")
    for label, d in items:
        check_label(label)
        if isinstance(d, str) and d not in names and not d.startswith(tuple(prefixes)):
            raise ValueError(f"unknown detector name {d!r}; choose from {tuple(names)}"
                             + "".join(f" or {p}<name>" for p in prefixes))
        if not isinstance(d, (str, detector_class)):
            raise TypeError(f"detector {label!r} must be a fitted rce-art detector or a name, got {type(d).__name__}")
    lower = [k.lower() for k, _ in items]
    if len(set(lower)) != len(items):
        raise ValueError(f"detector labels must be distinct (also ignoring case), got {[k for k, _ in items]}; pass a "
                         "dict label -> detector")
    return items
