"""``rce_art.evaluate``: an honest robustness report for a classifier and its detectors, in one call.

Per detector: clean accuracy, realised false-positive rate on held-out clean inputs, the oblivious attack
(classifier-only PGD), the standard worst-case ensemble at each operating point, and the diagnostics of Carlini et
al. (2019) / Tramer et al. (2020). The work is cut into units (one detector, one operating point, one batch) stored
atomically in ``out`` as they finish: a killed run resumes where it stopped, and shards (``shard=(i, n)``, or the
ranks of torchrun) split the units between processes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rce_art import distributed
from rce_art._validation import check_inputs, check_labels, is_data_source, materialise
from rce_art.adapters.adaptive import ADAPTIVE_ATTACKS, STANDARD_ENSEMBLE, build_adaptive_attack
from rce_art.attacks.detector_pgd import DetectorPGD
from rce_art.detectors.base import ScoreDetector
from rce_art.detectors.persistence import model_fingerprint
from rce_art.evaluation.worst_case import WorstCaseEnsemble
from rce_art.models.estimator import resolve_model
from rce_art.robustness.diagnostics import run_diagnostics
from rce_art.robustness.named import DETECTOR_NAMES, fit_named_detector, save_atomically
from rce_art.robustness.report import EvaluationReport, build_report
from rce_art.robustness.store import ResultStore, digest_arrays

__all__ = ["BUDGETS", "evaluate", "plan_units"]

BUDGETS = {"quick": 0.2, "standard": 1.0}
"""Budget multipliers of the attacks' default iterations / queries (``standard``: APGD 50 iterations, Square 500
queries, DetectorPGD 50 steps; ``quick``: a fifth of that, for a first look)."""


def _check(classifier: Any, x: Any, y: Any, x_calibration: Any, eps: float, norm: str, fprs: Sequence[float],
           attacks: Any, budget: str) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    view = resolve_model(classifier)
    if view.estimator is None or view.clip_values is None:
        raise TypeError("evaluate needs an ART classifier with clip_values (rce_art.make_art_classifier(model, "
                        "input_shape, nb_classes, clip_values))")
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0 in pixel units, got {eps!r}")
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if not fprs or any(not 0.0 < float(f) < 1.0 for f in fprs):
        raise ValueError(f"fprs must be false-positive rates in (0, 1), got {fprs!r}")
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    names = list(STANDARD_ENSEMBLE) if attacks == "standard" else list(attacks)
    unknown = [a for a in names if a not in ADAPTIVE_ATTACKS]
    if unknown or not names:
        raise ValueError(f"unknown attack names {unknown}; choose from {ADAPTIVE_ATTACKS} or 'standard'")
    for arr, name in ((x, "x"), (x_calibration, "x_calibration")):
        check_inputs(arr, name=name, input_shape=view.input_shape, clip_values=view.clip_values)
    xa, xc = np.asarray(x, np.float32), np.asarray(x_calibration, np.float32)
    ya = check_labels(y, len(xa), int(classifier.nb_classes), name="y")
    return view, xa, ya, xc, names


def _items(detectors: Any) -> list[tuple[str, Any]]:
    if isinstance(detectors, (str, ScoreDetector)):
        detectors = [detectors]
    items = list(detectors.items()) if isinstance(detectors, Mapping) else [
        (d if isinstance(d, str) else type(d).__name__, d) for d in detectors]
    if not items:
        raise ValueError(f"pass at least one detector (a fitted detector or a name among {DETECTOR_NAMES})")
    if len({k for k, _ in items}) != len(items):
        raise ValueError(f"detector labels must be distinct, got {[k for k, _ in items]}; pass a dict label -> detector")
    for label, d in items:
        if isinstance(d, str) and d not in DETECTOR_NAMES:
            raise ValueError(f"unknown detector name {d!r}; choose from {DETECTOR_NAMES}")
        if not isinstance(d, (str, ScoreDetector)):
            raise TypeError(f"detector {label!r} must be a fitted rce-art detector or a name, got {type(d).__name__}")
        if isinstance(d, ScoreDetector):
            d.check_fitted()
    return items


def _detectors(items: list[tuple[str, Any]], classifier: Any, x_fit: Any, y_fit: Any, x_cal: np.ndarray, seed: int,
               folder: Path | None) -> tuple[dict[str, ScoreDetector], dict[str, Any], np.ndarray]:
    """Detectors by label (names fitted here, or loaded from ``folder`` where an earlier run saved them), their
    description, and the held-out inputs for the realised FPR."""
    named = any(isinstance(d, str) for _, d in items)
    half = len(x_cal) // 2 if named else 0
    held_out = x_cal[half:] if named else x_cal  # names: calibrate on one half, measure the realised FPR on the other
    dets, spec = {}, {}
    for label, d in items:
        if isinstance(d, str):
            path = None if folder is None else folder / "detectors" / f"{label}.safetensors"
            dets[label] = fit_named_detector(d, classifier, x_fit, y_fit, x_cal[:half], seed, path)
            spec[label] = {"name": d, "fitted_by": "evaluate", "n_fit": len(x_fit), "n_calibration": half, "seed": seed}
        else:
            dets[label] = d
            spec[label] = {"class": type(d).__name__, "params": {k: repr(v) for k, v in d.fit_params_.items()},
                           "threshold": float(d.threshold_)}
    return dets, spec, held_out


def plan_units(labels: Sequence[str], n: int, batch_size: int, fprs: Sequence[float], diagnostics: bool) -> list[str]:
    """Keys of every unit of work, in the fixed order they run (and are sharded: unit ``k`` goes to shard
    ``k mod n_shards``)."""
    batches = range(-(-n // batch_size))
    units = []
    for d in labels:
        units += [f"{d}|fpr"] + [f"{d}|clean|{b}" for b in batches] + [f"{d}|oblivious|{b}" for b in batches]
        units += [f"{d}|worst|{f}|{b}" for f in fprs for b in batches]
        if diagnostics:
            units.append(f"{d}|diagnostics")
    return units


def evaluate(classifier: Any, detectors: Any, x: Any, y: Any, *, x_calibration: Any, x_fit: Any = None,
             y_fit: Any = None, eps: float = 0.1, norm: str = "linf", attacks: str | Sequence[str] = "standard",
             fprs: Sequence[float] = (0.05, 0.5), budget: str = "standard", out: str | Path | None = None,
             batch_size: int = 100, seed: int = 0, diagnostics: bool = True, shard: tuple[int, int] | None = None,
             verbose: bool = True) -> EvaluationReport | None:
    """Evaluate a classifier with detectors against the standard worst-case ensemble; return the report.

    Args:
        classifier: ART ``PyTorchClassifier`` (with ``clip_values``; its preprocessing is honoured).
        detectors: Fitted detectors (a list, or a dict label -> detector) and / or names among ``DETECTOR_NAMES``
            (fitted here on ``x_fit, y_fit``, threshold on half of ``x_calibration``).
        x: Clean test inputs ``(N, *input_shape)`` within the clip values (or a ``DataLoader`` / ``Dataset`` of
            ``(x, y)``); y: their labels ``(N,)``.
        x_calibration: Held-out clean inputs (not used to train the classifier nor, for fitted detectors, to set
            their thresholds): realised false-positive rates are measured on them.
        x_fit, y_fit: Data to fit detectors given by name (e.g. the training set; arrays or a ``DataLoader``).
        eps: Budget in pixel units; norm: ``"linf"`` or ``"l2"``.
        attacks: ``"standard"`` (``rce_art.adapters.STANDARD_ENSEMBLE``) or names of ``ADAPTIVE_ATTACKS``, in order.
        fprs: Operating points (false-positive rates): the worst case runs at each.
        budget: ``"standard"`` or ``"quick"`` (a fifth of the iterations and queries).
        out: Results folder: units are stored as they finish, a rerun resumes, and ``report.json``, ``report.md``
            and ``report.html`` are written there. ``None``: nothing is written (no resume).
        batch_size: Inputs per unit of work.
        seed: Seed of the attacks and of detectors fitted by name.
        diagnostics: Run the sanity checks (unbounded attack, steps and eps monotonicity, gradients, FPR).
        shard: ``(i, n)``: run only the units of shard ``i`` of ``n`` (needs ``out``; merge with
            ``rce-art merge``); under torchrun the ranks shard automatically and rank 0 writes the report.
        verbose: Progress bars.

    Returns:
        The [`EvaluationReport`][rce_art.robustness.EvaluationReport]; ``None`` for a shard (or a rank other than
        0), whose results are in ``out``.

    Raises:
        TypeError, ValueError: On invalid inputs, labels, names or settings (nothing is written then).
        PermissionError: If ``out`` cannot be written.
        rce_art.robustness.CorruptResultError: If a stored result is corrupted.
    """
    if is_data_source(x):  # a DataLoader / Dataset of (x, y): its labels unless y is given
        x, found = materialise(x, "x")
        y = found if y is None else y
    if is_data_source(x_calibration):
        x_calibration = materialise(x_calibration, "x_calibration")[0]
    if is_data_source(x_fit):
        x_fit, found = materialise(x_fit, "x_fit")
        y_fit = found if y_fit is None else y_fit
    view, xa, ya, xc, names = _check(classifier, x, y, x_calibration, eps, norm, fprs, attacks, budget)
    fprs = tuple(float(f) for f in fprs)
    if shard is None and distributed.is_distributed():
        shard = (distributed.get_rank(), distributed.get_world_size())
    if shard is not None and (out is None or not 0 <= shard[0] < shard[1]):
        raise ValueError(f"shard must be (i, n) with 0 <= i < n and needs out=, got {shard!r}")
    items = _items(detectors)
    for label, d in items:
        if isinstance(d, ScoreDetector) and d.view.model is not view.model:
            raise ValueError(f"detector {label!r} was fitted on another classifier than the one evaluated; pass the "
                             "classifier the detector reads (detector.classifier)")
    if any(isinstance(d, str) for _, d in items) and (x_fit is None or y_fit is None):
        raise ValueError("detectors given by name need x_fit and y_fit (the data to fit them on, e.g. the classifier's "
                         "training set)")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    outp = None if out is None else Path(out)
    identity = {"eps": float(eps), "norm": norm, "attacks": names, "fprs": list(fprs), "budget": budget,
                "batch_size": int(batch_size), "seed": int(seed), "diagnostics": bool(diagnostics),
                "data": digest_arrays(xa, ya, xc), "n": len(xa),
                "model": model_fingerprint(view.model)}
    identity["detectors"] = {k: d if isinstance(d, str) else [type(d).__name__, float(d.threshold_),
                                                             sorted((p, repr(v)) for p, v in d.fit_params_.items())]
                             for k, d in items}
    if outp is not None and (outp / ResultStore.MANIFEST).exists():
        ResultStore(outp, identity)  # refuses another evaluation's folder before any work
    dets, spec, held_out = _detectors(items, classifier, x_fit, y_fit, xc, seed, outp)
    store = None if outp is None else ResultStore(outp, identity)  # everything validated and fitted: now it writes
    for label, d in items:
        path = None if outp is None else outp / "detectors" / f"{label}.safetensors"
        if isinstance(d, str) and path is not None and not path.exists() and distributed.is_main_process():
            save_atomically(dets[label], path)
    settings = {**identity, "detectors": spec, "clip_values": list(view.clip_values),
                "preprocessing": view.has_preprocessing, "n_held_out": len(held_out),
                "attack_descriptions": [build_adaptive_attack(a, eps, norm, BUDGETS[budget], seed).describe()
                                        for a in names]}
    if store is not None:  # every shard writes the same (deterministic) settings: merge needs them in any shard
        store.put("settings", settings)
        store.put("labels", {"y": ya.tolist()})
    units = plan_units(list(dets), len(xa), batch_size, fprs, diagnostics)
    mine = [u for k, u in enumerate(units) if shard is None or k % shard[1] == shard[0]]
    results: dict[str, Any] = {}
    bar = tqdm(mine, desc="evaluate", disable=not verbose)
    for key in bar:
        bar.set_postfix_str(key)
        data = store.get(key) if store is not None else None
        if data is None:
            data = _run_unit(key, dets, xa, ya, held_out, names, eps, norm, budget, batch_size, seed, fprs)
            if store is not None:
                store.put(key, data)
        results[key] = data
    if shard is not None:
        distributed.barrier()
        if shard[0] != 0 or not distributed.is_distributed():
            return None
        assert store is not None  # shard requires out (checked above)
        results = {k: store.get(k) for k in units}  # rank 0: every rank's units
    report = build_report(settings, units, results, ya.tolist())
    if outp is not None:
        report.write(outp)
    return report


def _run_unit(key: str, dets: dict[str, ScoreDetector], x: np.ndarray, y: np.ndarray, held_out: np.ndarray,
              names: list[str], eps: float, norm: str, budget: str, batch_size: int, seed: int,
              fprs: tuple[float, ...]) -> dict[str, Any]:
    """Compute one unit of work (see [`plan_units`][])."""
    parts = key.split("|")
    det, kind = dets[parts[0]], parts[1]
    t0 = time.perf_counter()
    if kind == "diagnostics":
        data = run_diagnostics(det, x, y, eps, norm, seed, BUDGETS[budget])
    elif kind == "fpr":  # realised false-positive rate on held-out clean inputs, and the operating thresholds
        from rce_art.detectors.calibration import calibrate_threshold

        flagged = det.detect(held_out)[1]
        cal = det.calibration_scores_.double().cpu().numpy()
        data = {"flagged": int(flagged.sum()), "n": len(flagged), "nominal": float(det.fpr),
                "threshold": float(det.threshold_), "thresholds": {str(f): calibrate_threshold(cal, f) for f in fprs}}
    else:
        b = int(parts[-1])
        xs, ys = x[b * batch_size : (b + 1) * batch_size], y[b * batch_size : (b + 1) * batch_size]
        if kind == "clean":
            report, _ = det.detect(xs)
            data = {"pred": report["predicted_class"].tolist(), "score": report["score"].tolist()}
        elif kind == "oblivious":
            ob = DetectorPGD(eps, norm=norm, mode="classifier", steps=max(1, round(50 * BUDGETS[budget])),
                             seed=seed).run(det, torch.as_tensor(xs), torch.as_tensor(ys))
            data = {"misclassified": ob.misclassified.cpu().tolist(), "score": ob.score.cpu().double().tolist(),
                    "linf": ob.linf.cpu().tolist()}
        else:
            fpr = float(parts[2])
            attacks = [build_adaptive_attack(a, eps, norm, BUDGETS[budget], seed) for a in names]
            r = WorstCaseEnsemble(attacks, batch_size=batch_size).run(det, xs, ys, fpr=fpr)
            data = {"broken": r.broken.tolist(), "attack": r.attack.tolist(), "linf": r.linf.tolist(),
                    "l2": r.l2.tolist(), "score": r.score.tolist(), "flagged": r.flagged.tolist(),
                    "pred": r.pred.tolist(), "gradients": r.gradients.tolist(), "queries": r.queries.tolist(),
                    "masking": r.masking.tolist(), "threshold": r.settings["threshold"],
                    "per_attack": [{k: v for k, v in a.items() if k != "seconds"} for a in r.per_attack]}
    return {**data, "timing": {"seconds": time.perf_counter() - t0}}
