"""The units of work of an evaluation (one detector, one operating point, one batch of inputs): their keys, in the
fixed order they run and are sharded, and the computation of one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from rce_art.adapters.adaptive_attacks import build_adaptive_attack
from rce_art.attacks.detector_pgd import DetectorPGD
from rce_art.detectors.base import ScoreDetector
from rce_art.detectors.calibration import calibrate_threshold, is_flagged
from rce_art.evaluation.binarization import binarization_test
from rce_art.evaluation.substitution import nearest_substitutes
from rce_art.evaluation.worst_case import WorstCaseEnsemble
from rce_art.report.diagnostics import run_diagnostics
from rce_art.settings import WORST_CASE

__all__ = ["BUDGETS", "GALLERY_PER_UNIT", "UnitKey", "plan_units", "run_unit", "substitution_unit"]

BUDGETS = WORST_CASE.budgets
"""Budget multipliers of the attacks' default iterations / queries (``standard``: APGD 50 iterations, Square 500
queries, DetectorPGD 50 steps; ``quick``: a fifth of that, for a first look and the extra operating points)."""
GALLERY_PER_UNIT = WORST_CASE.gallery_per_unit
"""Broken inputs per unit whose clean and adversarial pixels are kept for the report's gallery."""


UnitKind = Literal["fpr", "clean", "oblivious", "worst", "curve", "diagnostics", "substitution", "binarization"]


@dataclass(frozen=True)
class UnitKey:
    """One unit of work: a detector, what is computed, at which operating point, on which batch of inputs.

    ``str(key)`` is its name in the results folder (``units/<name>.json``), e.g. ``"kd|worst|0.05|3"``; the code
    reads the fields, never the string.

    Attributes:
        detector: The detector's label.
        kind: ``"fpr"`` (held-out scores and thresholds), ``"clean"``, ``"oblivious"``, ``"worst"`` (the ensemble at
            a main operating point), ``"curve"`` (at an extra one, quick budget), ``"diagnostics"``,
            ``"substitution"`` (the trivial-substitution bound) or ``"binarization"`` (the binarization tests at a
            main operating point).
        fpr: The operating point (``worst``, ``curve`` and ``binarization`` units), else ``None``.
        batch: The batch of inputs (per-batch units), else ``None``.
    """

    detector: str
    kind: UnitKind
    fpr: float | None = None
    batch: int | None = None

    def __str__(self) -> str:
        return "|".join(str(p) for p in (self.detector, self.kind, self.fpr, self.batch) if p is not None)


def plan_units(labels: Sequence[str], n: int, batch_size: int, fprs: Sequence[float], diagnostics: bool,
               curve_fprs: Sequence[float] = (), binarization: bool = False) -> list[UnitKey]:
    """Keys of every unit of work, in the fixed order they run (and are sharded: unit ``k`` goes to shard
    ``k mod n_shards``).

    Args:
        labels: Detector labels.
        n: Inputs attacked.
        batch_size: Inputs per unit.
        fprs: Main operating points.
        diagnostics: Whether the diagnostics run.
        curve_fprs: Extra operating points (quick budget), none of them in ``fprs``.
        binarization: Whether the binarization tests run (one unit per detector and main operating point).
    """
    batches = range(-(-n // batch_size))
    units: list[UnitKey] = []
    for d in labels:
        units += [UnitKey(d, "fpr")] + [UnitKey(d, "clean", batch=b) for b in batches]
        units += [UnitKey(d, "oblivious", batch=b) for b in batches]
        units += [UnitKey(d, "worst", float(f), b) for f in fprs for b in batches]
        units += [UnitKey(d, "curve", float(f), b) for f in curve_fprs for b in batches]
        if diagnostics:
            units.append(UnitKey(d, "diagnostics"))
        units.append(UnitKey(d, "substitution"))
        if binarization:
            units += [UnitKey(d, "binarization", float(f)) for f in fprs]
    return units


def run_unit(key: UnitKey, dets: dict[str, ScoreDetector], v: dict[str, Any], held_out: np.ndarray, norm: str,
              budget: str) -> dict[str, Any]:
    """Compute one unit of work (see [`plan_units`][]).

    Args:
        key: The unit's key.
        dets: Detectors by label.
        v: The validated arguments of [`evaluate`][rce_art.report.evaluate] (inputs, labels, eps, operating
            points, attack names, batch size, seed).
        held_out: Held-out clean inputs (realised false-positive rates).
        norm: ``"linf"`` or ``"l2"``.
        budget: ``"standard"`` or ``"quick"``.

    Returns:
        The unit's JSON-serialisable result, with its ``timing``.
    """
    det, kind = dets[key.detector], key.kind
    x, y, bs, eps, seed = v["x"], v["y"], v["batch_size"], v["eps"], v["seed"]
    t0 = time.perf_counter()
    if kind == "diagnostics":
        data = run_diagnostics(det, x, y, eps, norm, seed, BUDGETS[budget])
    elif kind == "fpr":  # held-out clean scores (realised FPRs) and the threshold of every operating point
        cal = det.calibration_scores_.double().cpu().numpy()
        score = det.detect(held_out)[0]["score"]
        data = {"held_out_score": np.asarray(score, np.float64).tolist(), "nominal": float(det.fpr),
                "thresholds": {str(f): calibrate_threshold(cal, f) for f in (*v["fprs"], *v["curve"])},
                "calibration_score": cal.tolist()}  # the bootstrap re-fits the threshold on resamples of them
    elif kind == "substitution":
        data = substitution_unit(det, x, y, held_out, v["fprs"], norm)
    elif kind == "binarization":
        assert key.fpr is not None
        attacks = [build_adaptive_attack(a, eps, norm, BUDGETS[budget], seed) for a in v["names"]]
        data = {("inverted" if inv else "test"): binarization_test(det, x, y, attacks, fpr=key.fpr, inverted=inv,
                                                                   seed=seed, batch_size=bs).to_dict()
                for inv in (False, True)}
    else:
        assert key.batch is not None  # per-batch units
        b = key.batch
        xs, ys = x[b * bs : (b + 1) * bs], y[b * bs : (b + 1) * bs]
        if kind == "clean":
            report, _ = det.detect(xs)
            data = {"pred": report["predicted_class"].tolist(), "score": np.asarray(report["score"], np.float64).tolist()}
        elif kind == "oblivious":
            ob = DetectorPGD(eps, norm=norm, mode="classifier", steps=max(1, round(WORST_CASE.detector_pgd_steps * BUDGETS[budget])),
                             seed=seed).run(det, torch.as_tensor(xs), torch.as_tensor(ys))
            data = {"misclassified": ob.misclassified.cpu().tolist(), "score": ob.score.cpu().double().tolist(),
                    "linf": ob.linf.cpu().tolist()}
        else:
            assert key.fpr is not None  # worst / curve units
            fpr = key.fpr
            mult = BUDGETS[budget] if kind == "worst" else min(BUDGETS[budget], BUDGETS["quick"])
            attacks = [build_adaptive_attack(a, eps, norm, mult, seed) for a in v["names"]]
            r = WorstCaseEnsemble(attacks, batch_size=bs).run(det, xs, ys, fpr=fpr)
            data = {"broken": r.broken.tolist(), "attack": r.attack.tolist(), "masking": r.masking.tolist(),
                    "threshold": r.settings["threshold"]}
            if kind == "worst":
                shown = [i for i in np.flatnonzero(r.broken) if r.attack[i] != "clean"][:GALLERY_PER_UNIT]
                data.update(linf=r.linf.tolist(), l2=r.l2.tolist(), score=r.score.tolist(), flagged=r.flagged.tolist(),
                            pred=r.pred.tolist(), gradients=r.gradients.tolist(), queries=r.queries.tolist(),
                            per_attack=[{k: a for k, a in p.items() if k != "seconds"} for p in r.per_attack],
                            gallery=[{"index": int(b * bs + i), "x": xs[i].tolist(), "x_adv": r.x_adv[i].tolist()}
                                     for i in shown])
    return {**data, "timing": {"seconds": time.perf_counter() - t0}}


def substitution_unit(det: ScoreDetector, x: np.ndarray, y: np.ndarray, held_out: np.ndarray, fprs: Sequence[float],
                      norm: str) -> dict[str, Any]:
    """Per main operating point, each input's distance to the closest clean input (another evaluated input or a
    held-out one) that already is a successful adversarial example for it
    ([`nearest_substitutes`][rce_art.evaluation.nearest_substitutes])."""
    cand = np.concatenate([x, held_out])
    report, _ = det.detect(cand)
    cal = det.calibration_scores_.double().cpu().numpy()
    out: dict[str, Any] = {"n_candidates": len(cand), "fprs": {}}
    for f in fprs:
        flagged = is_flagged(report["score"], calibrate_threshold(cal, f))
        dist, idx = nearest_substitutes(x, y, cand, report["predicted_class"], flagged, norm, np.arange(len(x)))
        out["fprs"][str(f)] = {"distance": [float(d) if np.isfinite(d) else None for d in dist],
                               "index": idx.tolist()}
    return out
