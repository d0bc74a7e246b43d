"""``rce_art.evaluate``: an honest robustness report for a classifier and its detectors, in one call.

Per detector: clean accuracy and, at each operating point, the realised false-positive rate on held-out clean
inputs, the oblivious attack (classifier-only PGD), the standard worst-case ensemble, robust accuracy with detection
(docs/concepts.md) and the diagnostics of Carlini et al. (2019) / Tramer et al. (2020); extra operating points at a
cheap budget draw success against the false-positive rate. The work is cut into units (one detector, one operating
point, one batch) stored atomically in ``out`` as they finish: a killed run resumes where it stopped, and shards
(``shard=(i, n)``, or the ranks of torchrun) split the units between processes. The folder is keyed on everything the
numbers depend on ([`rce_art.report.identity`][]): results of other settings, data or model are never reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rce_art import distributed
from rce_art._validation import check_inputs, check_labels, is_data_source, materialise
from rce_art.adapters.adaptive_attacks import ADAPTIVE_ATTACKS, REGISTRY, STANDARD_ENSEMBLE, build_adaptive_attack
from rce_art.detectors.base import ScoreDetector
from rce_art.detectors.persistence import model_fingerprint
from rce_art.evaluation.store import ResultStore, digest_arrays, package_versions
from rce_art.models.estimator import resolve_model
from rce_art.report.checks import check_fprs, check_integer, check_real, detector_items
from rce_art.report.identity import detector_digest, json_sha256, prediction_probe, preprocessing_spec
from rce_art.report.model import EvaluationReport, build_report
from rce_art.report.named import DETECTOR_NAMES, OOD_PREFIX, fit_named_detector, save_atomically
from rce_art.report.units import BUDGETS, plan_units, run_unit
from rce_art.settings import WORST_CASE

__all__ = ["BUDGETS", "DEFAULT_CURVE_FPRS", "evaluate", "plan_units"]

DEFAULT_CURVE_FPRS = WORST_CASE.curve_fprs
"""Extra operating points of the success-vs-FPR figure, attacked at the ``quick`` budget (ours)."""
STORE_FORMAT = 2
"""Format of a results folder (2 since rce-art 0.6)."""


def _validated(classifier: Any, detectors: Any, x: Any, y: Any, x_calibration: Any, x_fit: Any, y_fit: Any,
               eps: Any, norm: Any, attacks: Any, fprs: Any, curve_fprs: Any, budget: Any, batch_size: Any, seed: Any,
               shard: Any, out: Any) -> dict[str, Any]:
    """Every argument checked (nothing is computed or written before); the values to run with."""
    view = resolve_model(classifier)
    if view.estimator is None or view.clip_values is None:
        raise TypeError("evaluate needs an ART classifier with clip_values (rce_art.make_art_classifier(model, "
                        "input_shape, nb_classes, clip_values))")
    v: dict[str, Any] = {"view": view, "eps": check_real(eps, "eps", low=0.0)}
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    v["fprs"] = check_fprs(fprs, "fprs")
    curve = check_fprs(() if curve_fprs is None else curve_fprs, "curve_fprs", allow_empty=True)
    v["curve"] = tuple(sorted(f for f in curve if f not in v["fprs"]))
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    v["batch_size"], v["seed"] = check_integer(batch_size, "batch_size", 1), check_integer(seed, "seed", 0)
    names = list(STANDARD_ENSEMBLE) if attacks == "standard" else (
        [attacks] if isinstance(attacks, str) else list(attacks))
    unknown = [a for a in names if a not in ADAPTIVE_ATTACKS]
    if unknown or not names:
        raise ValueError(f"unknown attack names {unknown}; choose from {ADAPTIVE_ATTACKS} or 'standard'")
    if len(set(names)) != len(names):
        raise ValueError(f"attack names must be distinct, got {names}")
    for a in names:
        build_adaptive_attack(a, v["eps"], norm, BUDGETS[budget], v["seed"]).check_input_shape(view.input_shape)
    v["names"] = names
    if shard is not None:
        if out is None or not (isinstance(shard, Sequence) and len(shard) == 2):
            raise ValueError(f"shard must be (i, n) with 0 <= i < n and needs out=, got {shard!r}")
        i, n = check_integer(shard[0], "shard index", 0), check_integer(shard[1], "shard count", 1)
        if i >= n:
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
        v["shard"] = (i, n)
    items = detector_items(detectors, DETECTOR_NAMES, ScoreDetector, prefixes=(OOD_PREFIX,))
    for label, d in items:
        if isinstance(d, ScoreDetector):
            d.check_fitted()
            if d.view.model is not view.model:
                raise ValueError(f"detector {label!r} was fitted on another classifier than the one evaluated; pass "
                                 "the classifier the detector reads (detector.classifier)")
    v["items"] = items
    for arr, name in ((x, "x"), (x_calibration, "x_calibration")):
        check_inputs(arr, name=name, input_shape=view.input_shape, clip_values=view.clip_values)
    v["x"], v["x_cal"] = np.asarray(x, np.float32), np.asarray(x_calibration, np.float32)
    nb = int(classifier.nb_classes)
    v["y"] = check_labels(y, len(v["x"]), nb, name="y")
    if len(v["x"]) == 0 or len(v["x_cal"]) < 2:
        raise ValueError(f"need at least 1 input x and 2 held-out inputs x_calibration, got {len(v['x'])} and "
                         f"{len(v['x_cal'])}")
    v["x_fit"] = v["y_fit"] = None
    if any(isinstance(d, str) for _, d in items):
        if x_fit is None or y_fit is None:
            raise ValueError("detectors given by name need x_fit and y_fit (the data to fit them on, e.g. the "
                             "classifier's training set)")
        check_inputs(x_fit, name="x_fit", input_shape=view.input_shape, clip_values=view.clip_values)
        v["x_fit"] = np.asarray(x_fit, np.float32)
        v["y_fit"] = check_labels(y_fit, len(v["x_fit"]), nb, name="y_fit")
    return v


def _identity(v: dict[str, Any], classifier: Any, norm: str, budget: str, diagnostics: bool) -> dict[str, Any]:
    view = v["view"]
    named = v["x_fit"] is not None
    return {"store_format": STORE_FORMAT, "eps": v["eps"], "norm": norm, "attacks": v["names"],
            "attack_providers": {n: REGISTRY[n].toolkit for n in v["names"]},  # 0.7: apgd-ce etc. changed provider
            "fprs": list(v["fprs"]), "curve_fprs": list(v["curve"]), "budget": budget, "batch_size": v["batch_size"],
            "seed": v["seed"], "diagnostics": bool(diagnostics), "n": len(v["x"]),
            "kept_iterates": "no-success-left-behind/1",  # 0.7: the ensemble keeps breaking iterates it observed
            "data": digest_arrays(v["x"], v["y"], v["x_cal"]),
            "fit_data": digest_arrays(v["x_fit"], v["y_fit"]) if named else None,
            "clip_values": [float(c) for c in view.clip_values], "preprocessing": preprocessing_spec(classifier),
            "model": {**model_fingerprint(view.model), "probe": prediction_probe(classifier, v["x"])},
            "detectors": {k: d if isinstance(d, str) else [type(d).__name__, detector_digest(d)] for k, d in v["items"]},
            "versions": package_versions()}


def evaluate(classifier: Any, detectors: Any, x: Any, y: Any, *, x_calibration: Any, x_fit: Any = None,
             y_fit: Any = None, eps: float = 0.1, norm: str = "linf", attacks: str | Sequence[str] = "standard",
             fprs: Sequence[float] = (0.05, 0.5), curve_fprs: Sequence[float] | None = DEFAULT_CURVE_FPRS,
             budget: str = "standard", out: str | Path | None = None, batch_size: int = 100, seed: int = 0,
             diagnostics: bool = True, binarization: bool = False, reference_robust_accuracy: float | None = None,
             shard: tuple[int, int] | None = None, verbose: bool = True) -> EvaluationReport | None:
    """Evaluate a classifier with detectors against the standard worst-case ensemble; return the report.

    Args:
        classifier: ART ``PyTorchClassifier`` (with ``clip_values``; its preprocessing is honoured).
        detectors: Fitted detectors (a list, or a dict label -> detector) and / or names among ``DETECTOR_NAMES``
            (fitted here on ``x_fit`` and ``y_fit``, threshold on half of ``x_calibration``). Labels: letters,
            digits, ``_ . -``.
        x: Clean test inputs ``(N, *input_shape)`` within the clip values (or a ``DataLoader`` / ``Dataset`` of
            ``(x, y)``).
        y: Their labels ``(N,)``.
        x_calibration: Held-out clean inputs (not used to train the classifier nor, for fitted detectors, to set
            their thresholds): realised false-positive rates are measured on them.
        x_fit: Inputs to fit detectors given by name on (e.g. the training set; an array or a ``DataLoader``).
        y_fit: Their labels.
        eps: Budget in pixel units.
        norm: ``"linf"`` or ``"l2"``.
        attacks: ``"standard"`` (``rce_art.adapters.STANDARD_ENSEMBLE``) or distinct names of ``ADAPTIVE_ATTACKS``,
            in order.
        fprs: Operating points (distinct false-positive rates in ``(0, 1)``): the worst case runs at each, at
            ``budget``.
        curve_fprs: Extra operating points of the success-vs-FPR figure, attacked at the ``quick`` budget;
            ``None`` or ``()``: none.
        budget: ``"standard"`` or ``"quick"`` (a fifth of the iterations and queries).
        out: Results folder: units are stored as they finish, a rerun resumes, and ``report.json``, ``report.md``
            and ``report.html`` are written there. ``None``: nothing is written (no resume).
        batch_size: Inputs per unit of work (an integer >= 1).
        seed: Seed of the attacks and of detectors fitted by name.
        diagnostics: Run the sanity checks (unbounded attack, steps and eps monotonicity, gradients). The cheap
            active checks always run: no success left behind, the trivial-substitution bound, bootstrap intervals
            with the threshold re-fitted (see docs/concepts.md).
        binarization: Run the binarization test and its inverted form (Zimmermann et al. 2022) at each operating
            point on 20 inputs (measured cost: docs/howto/evaluate.md).
        reference_robust_accuracy: The best known robust accuracy (a fraction) of a classifier on this task at
            ``eps / 2``: Tramer's bound WARNs where the robust accuracy with detection at ``eps`` would beat it.
        shard: ``(i, n)``: run only the units of shard ``i`` of ``n`` (needs ``out``; merge with
            ``rce-art merge``); under torchrun the ranks shard automatically and rank 0 writes the report.
        verbose: Progress bars.

    Returns:
        The [`EvaluationReport`][rce_art.report.EvaluationReport]; ``None`` for a shard (or a rank other than
        0), whose results are in ``out``.

    Raises:
        TypeError: On arguments of the wrong type (nothing is written then).
        ValueError: On invalid inputs, labels, names or settings, or a results folder of another evaluation
            (nothing is written then).
        PermissionError: If ``out`` cannot be written.
        rce_art.report.CorruptResultError: If a stored result is corrupted or belongs to another evaluation.
    """
    if is_data_source(x):  # a DataLoader / Dataset of (x, y): its labels unless y is given
        x, found = materialise(x, "x")
        y = found if y is None else y
    if is_data_source(x_calibration):
        x_calibration = materialise(x_calibration, "x_calibration")[0]
    if is_data_source(x_fit):
        x_fit, found = materialise(x_fit, "x_fit")
        y_fit = found if y_fit is None else y_fit
    if shard is None and distributed.is_distributed():
        shard = (distributed.get_rank(), distributed.get_world_size())
    v = _validated(classifier, detectors, x, y, x_calibration, x_fit, y_fit, eps, norm, attacks, fprs, curve_fprs,
                   budget, batch_size, seed, shard, out)
    if reference_robust_accuracy is not None and not (
            isinstance(reference_robust_accuracy, (int, float)) and 0.0 <= float(reference_robust_accuracy) <= 1.0):
        raise ValueError(f"reference_robust_accuracy must be a fraction in [0, 1] (the best known robust accuracy at "
                         f"eps/2), got {reference_robust_accuracy!r}")
    shard = v.get("shard")
    identity = _identity(v, classifier, norm, budget, diagnostics)
    identity["binarization"] = bool(binarization)
    outp = None if out is None else Path(out)
    if outp is not None and (outp / ResultStore.MANIFEST).exists():
        identity = ResultStore.check_manifest(outp, identity)  # another evaluation's folder: refused before any work
    run_id = json_sha256(identity)
    dets, spec, held_out, to_save = _detectors(v, classifier, outp, run_id)
    store = None if outp is None else ResultStore(outp, identity)  # everything validated and fitted: now it writes
    if store is not None and distributed.is_main_process():
        for label, path in to_save.items():
            save_atomically(dets[label], path)
    settings = {k: identity[k] for k in ("eps", "norm", "attacks", "fprs", "curve_fprs", "budget", "batch_size", "seed",
                                         "diagnostics", "n", "clip_values", "preprocessing", "versions")}
    model = {k: m for k, m in identity["model"].items() if k != "probe"}  # the probe: in manifest.json
    settings.update(detectors=spec, n_held_out=len(held_out), data=identity["data"], model=model,
                    binarization=bool(binarization),
                    reference_robust_accuracy=None if reference_robust_accuracy is None else float(
                        reference_robust_accuracy),
                    attack_descriptions=[build_adaptive_attack(a, v["eps"], norm, BUDGETS[budget], v["seed"]).describe()
                                         for a in v["names"]])
    if store is not None:  # every shard writes the same (deterministic) settings: merge checks they agree
        store.put("settings", settings)
        store.put("labels", {"y": v["y"].tolist()})
    units = plan_units(list(dets), len(v["x"]), v["batch_size"], v["fprs"], diagnostics, v["curve"], bool(binarization))
    mine = [u for k, u in enumerate(units) if shard is None or k % shard[1] == shard[0]]
    results: dict[str, Any] = {}
    bar = tqdm(mine, desc="evaluate", disable=not verbose)
    for key in bar:
        bar.set_postfix_str(str(key))
        data = store.get(str(key)) if store is not None else None
        if data is None:
            data = run_unit(key, dets, v, held_out, norm, budget)
            if store is not None:
                store.put(str(key), data)
        results[str(key)] = data
    if shard is not None:
        distributed.barrier()
        if shard[0] != 0 or not distributed.is_distributed():
            return None
        assert store is not None  # shard requires out (checked above)
        results = {str(k): store.get(str(k)) for k in units}  # rank 0: every rank's units
    report = build_report(settings, units, results, v["y"].tolist())
    if outp is not None:
        report.write(outp)
    return report


def _detectors(v: dict[str, Any], classifier: Any, folder: Path | None, run_id: str
               ) -> tuple[dict[str, ScoreDetector], dict[str, Any], np.ndarray, dict[str, Path]]:
    """Detectors by label (names fitted here, or loaded from ``folder`` where a run of this evaluation saved them),
    their description, the held-out inputs for the realised FPR, and the files to save."""
    items, x_cal = v["items"], v["x_cal"]
    named = any(isinstance(d, str) for _, d in items)
    half = len(x_cal) // 2 if named else 0
    held_out = x_cal[half:] if named else x_cal  # names: calibrate on one half, measure the realised FPR on the other
    dets, spec, to_save = {}, {}, {}
    for label, d in items:
        if isinstance(d, str):  # the file is bound to this evaluation by its name
            path = None if folder is None else folder / "detectors" / f"{label}-{run_id[:16]}.safetensors"
            dets[label] = fit_named_detector(d, classifier, v["x_fit"], v["y_fit"], x_cal[:half], v["seed"], path)
            if path is not None and not path.exists():
                to_save[label] = path
            spec[label] = {"name": d, "fitted_by": "evaluate", "n_fit": len(v["x_fit"]), "n_calibration": half,
                           "seed": v["seed"]}
            if hasattr(dets[label], "score_gradient_"):  # pytorch-ood: where the score's gradient comes from
                spec[label]["score_gradient"] = dets[label].score_gradient_
        else:
            dets[label] = d
            spec[label] = {"class": type(d).__name__, "params": {k: repr(p) for k, p in d.fit_params_.items()},
                           "threshold": float(d.threshold_), "nominal_fpr": float(d.fpr)}
            if hasattr(d, "score_gradient_"):
                spec[label]["score_gradient"] = d.score_gradient_
    return dets, spec, held_out, to_save
