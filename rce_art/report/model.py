"""The evaluation report: one row per detector with every operating point, per-input records, diagnostics; its
JSON, Markdown and HTML forms render from the same rows ([`rce_art.report.render`][])."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rce_art._files import atomic_write
from rce_art.detectors.calibration import is_flagged
from rce_art.evaluation.bootstrap import bootstrap_operating_point
from rce_art.evaluation.rates import operating_point_rates
from rce_art.evaluation.store import CorruptResultError
from rce_art.metrics import rate_with_interval as _rate
from rce_art.report.active_checks import active_rows
from rce_art.report.diagnostics import check_rows
from rce_art.report.units import UnitKey

__all__ = ["FORMAT", "EvaluationReport", "build_report"]

FORMAT = "rce_art.EvaluationReport/2"
"""Format of ``report.json`` (2 since rce-art 0.6: robust accuracy with detection, per-operating-point rows)."""
GALLERY = 3
"""Broken inputs shown per detector and operating point."""


@dataclass
class EvaluationReport:
    """What [`evaluate`][rce_art.report.evaluate] found (definitions: docs/concepts.md, "Robust accuracy with
    detection").

    Attributes:
        settings: Everything the numbers depend on (eps, norm, attacks and their budgets, operating points, data and
            model digests, detectors, seed) and the package versions.
        rows: One summary per detector: ``clean_accuracy`` and, per operating point (``points[str(fpr)]``), the
            threshold attacked, the realised FPR at it, robust accuracy with detection (the headline), SR over the
            served inputs, the served rate, selective clean accuracy, the all-inputs SR and the attack-failure rate
            (each a dict ``k, n, rate, lo, hi``, Wilson 95%), the oblivious attack's rates, which attacks broke the
            inputs, gradient evaluations per input, gradient-masking evidence; ``curve``: SR and robust accuracy
            against the realised FPR over every operating point, main and extra.
        diagnostics: Per detector and operating point, the PASS / WARN checks with the number behind each.
        records: Per detector, per-input arrays (labels, clean predictions and scores, held-out scores, the
            oblivious and worst-case outcomes at each operating point: broken, attack, the best attempt's
            distortions, scores and classes, costs), a gallery of broken inputs and the diagnostics' outcomes.
        timing: Seconds per unit of work (kept apart: everything else is deterministic).
    """

    settings: dict[str, Any]
    rows: list[dict[str, Any]]
    diagnostics: dict[str, dict[str, list[dict[str, Any]]]]
    records: dict[str, dict[str, Any]]
    timing: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        """The summary as a Markdown table: one row per detector and operating point (Wilson 95% intervals)."""
        from rce_art.report.render import markdown_table, summary_table

        return markdown_table(*summary_table(self))

    def sentences(self) -> list[str]:
        """One plain sentence per detector, at each operating point (the report opens with them)."""
        from rce_art.report.render import sentences

        return sentences(self)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the timings (deterministic for deterministic attacks)."""
        d = asdict(self)
        d.pop("timing")
        return {"format": FORMAT, **d}

    def to_json(self) -> str:
        """[`to_dict`][] as JSON text."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, default=float)

    @classmethod
    def from_json(cls, text: str, timing: dict[str, float] | None = None) -> EvaluationReport:
        """Read a report written by [`to_json`][].

        Raises:
            ValueError: If the text is not a report of this format (invalid JSON, another format, missing or
                malformed parts).
        """
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ValueError(f"not a report: invalid JSON ({e})") from e
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            found = d.get("format") if isinstance(d, dict) else None
            hint = " (written by rce-art 0.5: run rce-art evaluate again)" if found == "rce_art.EvaluationReport/1" else ""
            raise ValueError(f"not an rce-art evaluation report of format {FORMAT}{hint}")
        parts = {"settings": dict, "rows": list, "diagnostics": dict, "records": dict}
        bad = [k for k, t in parts.items() if not isinstance(d.get(k), t)]
        if bad:
            raise ValueError(f"not a valid rce-art evaluation report: {', '.join(bad)} missing or malformed")
        report = cls(d["settings"], d["rows"], d["diagnostics"], d["records"], timing or {})
        try:  # every view must render: a malformed report is refused here, not half-written later
            from rce_art.report.render import check_renders

            check_renders(report)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise ValueError(f"not a valid rce-art evaluation report ({type(e).__name__}: {e})") from None
        return report

    def to_markdown(self) -> str:
        """The report as Markdown (sentences, results, definitions, diagnostics, attacks, settings)."""
        from rce_art.report.render import render_markdown

        return render_markdown(self)

    def to_html(self, path: str | Path) -> Path:
        """Write one self-contained HTML file (figures embedded); return its path."""
        from rce_art.report.render import render_html

        path = Path(path)
        atomic_write(path, render_html(self))
        return path

    def write(self, folder: str | Path) -> None:
        """Write ``report.json``, ``report.md``, ``report.html`` and ``timing.json`` into ``folder`` (atomically;
        every form is rendered before the first file is written)."""
        from rce_art.report.render import render_html

        folder = Path(folder)
        texts = {"report.json": self.to_json(), "report.md": self.to_markdown(), "report.html": render_html(self),
                 "timing.json": json.dumps(self.timing, indent=1, sort_keys=True)}
        for name, text in texts.items():
            atomic_write(folder / name, text)


def _batches(units: list[UnitKey], detector: str, kind: str, fpr: float | None = None) -> list[UnitKey]:
    """The per-batch units of one detector, kind and operating point, in batch order."""
    return sorted((u for u in units if u.detector == detector and u.kind == kind and u.fpr == fpr),
                  key=lambda u: u.batch or 0)


def _cat(units: list[UnitKey], results: dict[str, Any], detector: str, kind: str, field_: str,
         fpr: float | None = None) -> list[Any]:
    return [v for u in _batches(units, detector, kind, fpr) for v in results[str(u)][field_]]


def _point(rec: dict[str, Any], held_out: np.ndarray, f: float, threshold: float, broken: np.ndarray
           ) -> dict[str, Any]:
    y = np.asarray(rec["y"])
    correct = np.asarray(rec["clean_pred"]) == y
    flagged = is_flagged(rec["clean_score"], threshold)
    out: dict[str, Any] = {"fpr": f, "threshold": threshold,
                           "realised_fpr": _rate(int(is_flagged(held_out, threshold).sum()), held_out.size),
                           "clean_flagged": _rate(int(flagged.sum()), y.size)}
    out.update(operating_point_rates(correct, flagged, broken))
    return out


def build_report(settings: dict[str, Any], units: list[UnitKey], results: dict[Any, Any], labels: list[int]
                 ) -> EvaluationReport:
    """Assemble the report from the units' results (see [`plan_units`][rce_art.report.plan_units]).

    Raises:
        ValueError: If units have no results yet.
        CorruptResultError: If a unit was computed at another threshold than the plan's.
    """
    results = {str(k): r for k, r in results.items()}  # by UnitKey or by its name in the results folder
    missing = [str(u) for u in units if results.get(str(u)) is None]
    if missing:
        raise ValueError(f"{len(missing)} units have no results yet (e.g. {missing[0]!r}); run the remaining shards "
                         "or the same command again")
    dets = list(dict.fromkeys(u.detector for u in units))
    fprs, curve = [float(f) for f in settings["fprs"]], [float(f) for f in settings.get("curve_fprs", [])]
    rows: list[dict[str, Any]] = []
    diagnostics: dict[str, dict[str, list[dict[str, Any]]]] = {}
    records: dict[str, dict[str, Any]] = {}
    timing = {str(u): results[str(u)]["timing"]["seconds"] for u in units}
    y = np.asarray(labels)
    for d in dets:
        fu = results[str(UnitKey(d, "fpr"))]
        held = np.asarray(fu["held_out_score"], np.float64)
        rec: dict[str, Any] = {"y": y.tolist(), "clean_pred": _cat(units, results, d, "clean", "pred"),
                               "clean_score": _cat(units, results, d, "clean", "score"),
                               "held_out_score": held.tolist(), "thresholds": fu["thresholds"],
                               "oblivious_misclassified": _cat(units, results, d, "oblivious", "misclassified"),
                               "oblivious_score": _cat(units, results, d, "oblivious", "score"), "gallery": {}}
        correct = np.asarray(rec["clean_pred"]) == y
        row: dict[str, Any] = {"detector": d, "clean_accuracy": _rate(int(correct.sum()), y.size),
                               "nominal_fpr": fu["nominal"], "points": {}, "curve": []}
        diagnostics[d] = {}
        diag = results.get(str(UnitKey(d, "diagnostics")))
        diag = None if diag is None else {k: v for k, v in diag.items() if k != "timing"}
        rec["diagnostics"] = diag
        obl_mis, obl_score = np.asarray(rec["oblivious_misclassified"], bool), np.asarray(rec["oblivious_score"])
        sub = results.get(str(UnitKey(d, "substitution")))
        for f in fprs:
            t = float(fu["thresholds"][str(f)])
            w = {k: _cat(units, results, d, "worst", k, f) for k in
                 ("broken", "attack", "linf", "l2", "score", "flagged", "pred", "gradients", "queries", "masking")}
            stored = {results[str(u)]["threshold"] for u in _batches(units, d, "worst", f)}
            if stored != {t}:
                raise CorruptResultError(f"the worst-case units of {d!r} at FPR {f} were attacked at threshold(s) "
                                         f"{sorted(stored)}, not the plan's {t}: results of another evaluation")
            rec[f"worst@{f}"] = w
            broken = np.asarray(w["broken"], bool)
            point = _point(rec, held, f, t, broken)
            point["oblivious"] = operating_point_rates(correct, is_flagged(rec["clean_score"], t),
                                                       obl_mis & ~is_flagged(obl_score, t))
            counts = Counter(a for a, b in zip(w["attack"], w["broken"]) if b)
            point["broken_by"] = dict(counts.most_common())
            point["top_attack"] = counts.most_common(1)[0][0] if counts else "-"
            point["gradients_per_input"] = float(np.mean(w["gradients"])) if w["gradients"] else 0.0
            point["masking"] = int(np.sum(w["masking"]))
            row["points"][str(f)] = point
            rec["gallery"][str(f)] = _cat(units, results, d, "worst", "gallery", f)[:GALLERY]
            fpr_rate = point["realised_fpr"]
            left: Counter[str] = Counter()
            for u in _batches(units, d, "worst", f):
                for a in results[str(u)].get("per_attack", []):
                    left[a["attack"]] += int(a.get("left_behind", 0))
            point["left_behind"] = dict(left)
            if "calibration_score" in fu:  # 0.7: the bootstrap re-fits the threshold on resamples of these
                point["bootstrap"] = bootstrap_operating_point(
                    y, rec["clean_pred"], rec["clean_score"], w["pred"], w["score"], fu["calibration_score"], held, f,
                    attacked_threshold=t, seed=int(settings.get("seed", 0)))
            bin_ = results.get(str(UnitKey(d, "binarization", f)))
            if bin_ is not None:
                rec[f"binarization@{f}"] = {k: bin_[k] for k in ("test", "inverted")}
            diagnostics[d][str(f)] = check_rows(diag, f, t, fpr_rate["k"], fpr_rate["n"], point["masking"], y.size)
            diagnostics[d][str(f)] += active_rows(
                eps=float(settings["eps"]), broken=broken, left_behind=point["left_behind"],
                substitution=None if sub is None else sub["fprs"][str(f)], diag=diag, threshold=t,
                robust_accuracy=point["robust_accuracy"], reference=settings.get("reference_robust_accuracy"),
                binarization=bin_)
        for f in sorted(set(fprs) | set(curve)):  # the main points as computed above, the extra ones at the quick budget
            if f in fprs:
                p, budget = row["points"][str(f)], settings["budget"]
            else:
                broken = np.asarray(_cat(units, results, d, "curve", "broken", f), bool)
                rec[f"curve@{f}"] = {"broken": broken.tolist()}
                p, budget = _point(rec, held, f, float(fu["thresholds"][str(f)]), broken), "quick"
            row["curve"].append({"fpr": f, "budget": budget,
                                 **{k: p[k] for k in ("threshold", "realised_fpr", "robust_accuracy", "sr", "sr_all")}})
        rows.append(row)
        records[d] = rec
    return EvaluationReport(settings, rows, diagnostics, records, timing)
