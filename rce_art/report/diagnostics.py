"""The checks every report opens with: is the evaluation itself trustworthy? One set per operating point.

Carlini et al., "On Evaluating Adversarial Robustness" (2019), Section 5 and Tramer et al., "On Adaptive Attacks to
Adversarial Example Defenses" (NeurIPS 2020): an unbounded attack must reach ~100% misclassification; success must
not fall as the budget (eps) or the number of steps grows; gradient-free attacks must not beat gradient ones;
detector gradients must be non-zero and finite; and the realised false-positive rate on held-out clean inputs must
match the nominal one. Each check is PASS or WARN with the number behind it, at each operating point: the attacks'
per-input outcomes are stored, and success is counted at each point's own threshold.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from rce_art.attacks.detector_pgd import DetectorPGD
from rce_art.detectors.calibration import is_flagged
from rce_art.evaluation.sanity import detector_pgd_sanity
from rce_art.metrics import wilson_interval
from rce_art.settings import WORST_CASE

__all__ = ["EPS_FRACTIONS", "SANITY_INPUTS", "check_rows", "run_diagnostics", "success_at"]

SANITY_INPUTS = WORST_CASE.sanity_inputs
"""Inputs the sanity checks attack (the first of ``x``)."""
EPS_FRACTIONS = WORST_CASE.eps_fractions
"""The SR-vs-eps curve: selective DetectorPGD at these multiples of the evaluation's eps (ours)."""


def run_diagnostics(det: Any, x: np.ndarray, y: np.ndarray, eps: float, norm: str, seed: int,
                    budget: float) -> dict[str, Any]:
    """The per-detector outcomes behind the checks (see [`check_rows`][] for the verdicts at a threshold).

    Args:
        det: A fitted detector.
        x: Clean inputs; the first [`SANITY_INPUTS`][] are attacked.
        y: Their labels.
        eps: The evaluation's budget (pixel units).
        norm: ``"linf"`` or ``"l2"``.
        seed: Seed of the attacks.
        budget: Multiplier of the 50 steps of selective DetectorPGD.

    Returns:
        Per-input outcomes (misclassified, score) of selective DetectorPGD at half, once and twice its steps
        ([`detector_pgd_sanity`][rce_art.evaluation.detector_pgd_sanity], which also gives the unbounded
        misclassification rate and the fractions of inputs with a zero or non-finite detector gradient) and at the
        eps multiples [`EPS_FRACTIONS`][].
    """
    m = min(len(x), SANITY_INPUTS)
    xs, ys = torch.as_tensor(x[:m]), torch.as_tensor(y[:m])
    steps = max(2, round(WORST_CASE.detector_pgd_steps * budget))
    pgd = DetectorPGD(eps, norm=norm, mode="selective", steps=steps, seed=seed)
    s = detector_pgd_sanity(pgd, det, xs, ys, budgets=(steps // 2, steps, 2 * steps), unbounded_steps=2 * steps)
    by_eps = []
    for f in EPS_FRACTIONS:
        if f == 1.0:  # the same attack as the sanity check's middle budget: its outcome, not a second run
            by_eps.append(s["outcomes"][1])
            continue
        r = DetectorPGD(**{**pgd.params(), "eps": eps * f}).run(det, xs, ys)
        by_eps.append({"misclassified": r.misclassified.cpu().tolist(), "score": r.score.double().cpu().tolist()})
    return {"n": m, "steps": s["budgets"], "by_steps": s["outcomes"], "eps_curve": [eps * f for f in EPS_FRACTIONS],
            "by_eps": by_eps, "unbounded_misclassification": s["unbounded_misclassification"],
            "zero_grad_fraction": s["zero_grad_fraction"], "nonfinite_grad_fraction": s["nonfinite_grad_fraction"]}


def success_at(outcome: dict[str, list[Any]], threshold: float) -> float:
    """Fraction of the sanity inputs misclassified AND not flagged at ``threshold`` (``detect``'s test)."""
    mis = np.asarray(outcome["misclassified"], bool)
    score = np.asarray(outcome["score"], np.float64)
    return float((mis & ~is_flagged(score, threshold)).mean()) if mis.size else float("nan")


def _monotone(values: list[float], slack: float) -> bool:
    return all(b >= a - slack for a, b in itertools.pairwise(values))


def check_rows(diag: dict[str, Any] | None, fpr: float, threshold: float, flagged: int, n_held_out: int,
               masking: int, n_attacked: int) -> list[dict[str, Any]]:
    """PASS / WARN rows, each with the number behind it, for one detector at one operating point.

    Args:
        diag: [`run_diagnostics`][]'s outcomes, or ``None`` (sanity checks skipped).
        fpr: The nominal false-positive rate of the operating point.
        threshold: Its threshold (flagged when the score is below).
        flagged: Held-out clean inputs flagged at ``threshold``.
        n_held_out: Held-out clean inputs.
        masking: Inputs broken only by a gradient-free attack after every gradient attack failed on them.
        n_attacked: Inputs attacked.

    Returns:
        ``{"check", "verdict", "evidence"}`` per check.
    """
    lo, hi = wilson_interval(flagged, n_held_out)
    rows = [
        ("gradient-free attacks do not beat gradient ones", masking == 0,
         f"{masking} of {n_attacked} inputs broken only by a gradient-free attack (gradient masking if > 0)"),
        ("realised FPR matches the nominal one", lo <= fpr <= hi,
         (f"{flagged / max(n_held_out, 1):.3f} [{lo:.3f}, {hi:.3f}] on {n_held_out} held-out clean inputs vs nominal "
          f"{fpr:.3f}")),
    ]
    if diag is not None:
        rows = _sanity_rows(diag, threshold) + rows
    return [{"check": c, "verdict": "PASS" if ok else "WARN", "evidence": e} for c, ok, e in rows]


def _sanity_rows(diag: dict[str, Any], threshold: float) -> list[tuple[str, bool, str]]:
    slack = 1.0 / max(diag["n"], 1) + 1e-9  # one input of the sanity batch
    g0, gn = diag["zero_grad_fraction"], diag["nonfinite_grad_fraction"]
    by_steps = [success_at(o, threshold) for o in diag["by_steps"]]
    by_eps = [success_at(o, threshold) for o in diag["by_eps"]]
    return [
        ("unbounded attack misclassifies ~everything", diag["unbounded_misclassification"] >= 0.95,
         (f"{diag['unbounded_misclassification']:.2f} of {diag['n']} (classifier-only PGD over the whole pixel range; "
          "expect >= 0.95)")),
        ("success does not fall as steps grow", _monotone(by_steps, slack),
         f"steps {diag['steps']}: SR " + ", ".join(f"{v:.2f}" for v in by_steps)),
        ("success does not fall as eps grows", _monotone(by_eps, slack),
         "eps " + ", ".join(f"{e:.3g}" for e in diag["eps_curve"]) + ": SR " + ", ".join(f"{v:.2f}" for v in by_eps)),
        ("detector gradients non-zero and finite", g0 == 0 and gn == 0,
         f"zero {g0:.2f}, non-finite {gn:.2f} of the inputs"),
    ]
