"""The checks that test the evaluation itself, beyond the classic symptoms of [`check_rows`][rce_art.report.check_rows].

Per detector and operating point, each PASS or WARN with the number behind it:

- **no success left behind**: inputs where an attack's returned example was not broken although an iterate it
  evaluated was ([`SuccessObserver`][rce_art.evaluation.SuccessObserver]; the iterate is kept, so the numbers are
  right; a count > 0 says that attack's own bookkeeping loses successes);
- **trivial substitutes are broken**: an input with a clean input of another predicted class, unflagged, within eps
  must be broken ([`nearest_substitutes`][rce_art.evaluation.nearest_substitutes]), at eps and along the SR-vs-eps
  curve of the diagnostics;
- **Tramer's bound** (with a reference robust accuracy at eps/2): robust accuracy with detection at eps implies an
  (inefficient) classifier with that robust accuracy at eps/2 (Tramer, ICML 2022); a claim whose interval
  lies above the best known robust accuracy at eps/2 is suspect;
- **the binarization test and its inverted form** (when run): [`binarization_test`][rce_art.evaluation.binarization_test].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rce_art.detectors.calibration import is_flagged
from rce_art.evaluation.binarization import BinarizationResult
from rce_art.evaluation.bounds import tramer_bound

__all__ = ["active_rows"]

EPS_TOL = 1e-6
"""Slack on the budget when a substitute's distance is compared with eps (pixel units)."""


def active_rows(*, eps: float, broken: np.ndarray, left_behind: dict[str, int], substitution: dict[str, Any] | None,
                diag: dict[str, Any] | None, threshold: float, robust_accuracy: dict[str, Any],
                reference: float | None, binarization: dict[str, Any] | None) -> list[dict[str, Any]]:
    """PASS / WARN rows of the active checks at one operating point (see the module docstring).

    Args:
        eps: The evaluation's budget.
        broken: ``(N,)`` inputs the ensemble broke at this point.
        left_behind: Per attack, inputs recovered from its iterates.
        substitution: This point's substitution distances (``{"distance", "index"}``), or ``None``.
        diag: The diagnostics' outcomes (the SR-vs-eps curve), or ``None``.
        threshold: The point's threshold.
        robust_accuracy: The point's robust accuracy with detection (``rate``, ``lo``, ``hi``).
        reference: Reference robust accuracy at eps/2 for Tramer's bound, or ``None`` (not checked).
        binarization: The binarization unit's result (``{"test", "inverted"}``), or ``None`` (not run).

    Returns:
        ``{"check", "verdict", "evidence"}`` per check.
    """
    rows: list[tuple[str, bool, str]] = []
    total = sum(left_behind.values())
    per = ", ".join(f"{a} {k}" for a, k in left_behind.items() if k) or "none"
    rows.append(("no success left behind", total == 0,
                 (f"{total} inputs whose returned example was not broken although an evaluated iterate was ({per}); "
                  "those iterates are kept as the examples")))
    if substitution is not None:
        dist = np.array([np.inf if d is None else d for d in substitution["distance"]], np.float64)
        has = dist <= eps + EPS_TOL
        missed = has & ~broken
        rows.append(("trivial substitutes are broken", not missed.any(),
                     (f"{int(has.sum())} of {dist.size} inputs have an unflagged clean input predicted as another "
                      f"class within eps {eps:.3g} (a successful example without any attack); {int(missed.sum())} of "
                      "them left unbroken by the ensemble (too weak at this eps if > 0)")))
        if diag is not None:
            rows.append(_curve_row(dist, diag, threshold))
    if reference is not None:
        verdict = tramer_bound(robust_accuracy, reference, eps)
        rows.append(("robust accuracy within Tramer's bound", verdict["holds"], verdict["evidence"]))
    if binarization is not None:
        for key, name in (("test", "binarization test"), ("inverted", "inverted binarization test")):
            r = BinarizationResult.from_dict(binarization[key])
            rows.append((name, r.passed(), r.evidence()))
    return [{"check": c, "verdict": "PASS" if ok else "WARN", "evidence": e} for c, ok, e in rows]


def _curve_row(dist: np.ndarray, diag: dict[str, Any], threshold: float) -> tuple[str, bool, str]:
    """Along the SR-vs-eps curve (the diagnostics' first inputs): every input with a substitute within that eps must
    be a success of the curve's attack there."""
    m = int(diag["n"])
    parts, bad = [], 0
    for e, outcome in zip(diag["eps_curve"], diag["by_eps"]):
        has = dist[:m] <= e + EPS_TOL
        ok = np.asarray(outcome["misclassified"], bool) & ~is_flagged(np.asarray(outcome["score"], np.float64),
                                                                      threshold)
        miss = int((has & ~ok).sum())
        bad += miss
        parts.append(f"eps {e:.3g}: {int(has.sum())} with a substitute, {miss} missed")
    return ("trivial substitutes are broken along the eps curve", bad == 0,
            f"on the {m} diagnostic inputs, " + "; ".join(parts))
