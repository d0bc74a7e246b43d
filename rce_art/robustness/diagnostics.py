"""The checks every report opens with: is the evaluation itself trustworthy?

Carlini et al., "On Evaluating Adversarial Robustness" (2019), Section 5 and Tramer et al., "On Adaptive Attacks to
Adversarial Example Defenses" (NeurIPS 2020): an unbounded attack must reach ~100% misclassification; success must
not fall as the budget (eps) or the number of steps grows; gradient-free attacks must not beat gradient ones;
detector gradients must be non-zero and finite; and the realised false-positive rate on held-out clean inputs must
match the nominal one. Each check is PASS or WARN with the number behind it.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from rce_art.attacks.detector_pgd import DetectorPGD
from rce_art.evaluation.sanity import detector_pgd_sanity
from rce_art.metrics import wilson_interval

__all__ = ["EPS_FRACTIONS", "SANITY_INPUTS", "check_rows", "run_diagnostics"]

SANITY_INPUTS = 32
"""Inputs the sanity checks attack (the first of ``x``)."""
EPS_FRACTIONS = (0.25, 0.5, 1.0, 1.5)
"""The SR-vs-eps curve: selective DetectorPGD at these multiples of the evaluation's eps (ours)."""


def run_diagnostics(det: Any, x: np.ndarray, y: np.ndarray, eps: float, norm: str, seed: int,
                    budget: float) -> dict[str, Any]:
    """The per-detector numbers behind the checks (see [`check_rows`][] for the verdicts)."""
    m = min(len(x), SANITY_INPUTS)
    xs, ys = torch.as_tensor(x[:m]), torch.as_tensor(y[:m])
    steps = max(2, round(50 * budget))
    pgd = DetectorPGD(eps, norm=norm, mode="selective", steps=steps, seed=seed)
    s = detector_pgd_sanity(pgd, det, xs, ys, budgets=(steps // 2, steps, 2 * steps), unbounded_steps=2 * steps)
    curve = []
    for f in EPS_FRACTIONS:
        r = DetectorPGD(eps * f, norm=norm, mode="selective", steps=steps, seed=seed).run(det, xs, ys)
        curve.append(float((r.misclassified & (r.score.double() >= det.threshold_)).float().mean()))
    return {"n": m, "steps": [steps // 2, steps, 2 * steps], "success_by_steps": s["success_by_budget"],
            "unbounded_misclassification": s["unbounded_misclassification"],
            "zero_grad_fraction": s["zero_grad_fraction"], "nonfinite_grad_fraction": s["nonfinite_grad_fraction"],
            "eps_curve": [eps * f for f in EPS_FRACTIONS], "success_by_eps": curve}


def _monotone(values: list[float], slack: float) -> bool:
    return all(b >= a - slack for a, b in itertools.pairwise(values))


def check_rows(diag: dict[str, Any] | None, fpr: dict[str, Any], masking: int, n_attacked: int
               ) -> list[dict[str, Any]]:
    """PASS / WARN rows, each with the number behind it, for one detector (``diag`` None: sanity checks skipped)."""
    k, n, nominal = fpr["flagged"], fpr["n"], fpr["nominal"]
    lo, hi = wilson_interval(k, n)
    rows = [
        ("gradient-free attacks do not beat gradient ones", masking == 0,
         f"{masking} of {n_attacked} inputs broken only by a gradient-free attack (gradient masking if > 0)"),
        ("realised FPR matches the nominal one", lo <= nominal <= hi,
         f"{k / max(n, 1):.3f} [{lo:.3f}, {hi:.3f}] on {n} held-out clean inputs vs nominal {nominal:.3f}"),
    ]
    if diag is not None:
        rows = _sanity_rows(diag) + rows
    return [{"check": c, "verdict": "PASS" if ok else "WARN", "evidence": e} for c, ok, e in rows]


def _sanity_rows(diag: dict[str, Any]) -> list[tuple[str, bool, str]]:
    slack = 1.0 / max(diag["n"], 1) + 1e-9  # one input of the sanity batch
    g0, gn = diag["zero_grad_fraction"], diag["nonfinite_grad_fraction"]
    return [
        ("unbounded attack misclassifies ~everything", diag["unbounded_misclassification"] >= 0.95,
         (f"{diag['unbounded_misclassification']:.2f} of {diag['n']} (classifier-only PGD over the whole pixel range; "
         "expect >= 0.95)")),
        ("success does not fall as steps grow", _monotone(diag["success_by_steps"], slack),
         f"steps {diag['steps']}: SR " + ", ".join(f"{v:.2f}" for v in diag["success_by_steps"])),
        ("success does not fall as eps grows", _monotone(diag["success_by_eps"], slack),
         "eps " + ", ".join(f"{e:.3g}" for e in diag["eps_curve"]) + ": SR "
         + ", ".join(f"{v:.2f}" for v in diag["success_by_eps"])),
        ("detector gradients non-zero and finite", g0 == 0 and gn == 0,
         f"zero {g0:.2f}, non-finite {gn:.2f} of the inputs"),
    ]
