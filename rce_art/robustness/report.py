"""The evaluation report: one row per detector, per-input records, diagnostics; JSON, Markdown and HTML forms."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rce_art.metrics import wilson_interval
from rce_art.robustness.diagnostics import check_rows
from rce_art.robustness.store import atomic_write, package_versions

__all__ = ["EvaluationReport", "build_report"]

FORMAT = "rce_art.EvaluationReport/1"


def _rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(int(k), int(n))
    return {"k": int(k), "n": int(n), "rate": (k / n if n else float("nan")), "lo": lo, "hi": hi}


def _fmt(r: dict[str, Any]) -> str:
    return f"{r['rate']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"


@dataclass
class EvaluationReport:
    """What [`evaluate`][rce_art.robustness.evaluate] found.

    Attributes:
        settings: Everything the numbers depend on (eps, norm, attacks and their budgets, operating points, data and
            model digests, detectors, seed) and the package versions.
        rows: One summary per detector: clean accuracy, realised FPR, robust accuracy with rejection and SR at each
            operating point (oblivious and worst case), each a dict ``k, n, rate, lo, hi`` (Wilson 95%), the attack
            that broke most inputs, gradient evaluations per input.
        diagnostics: Per detector, the PASS / WARN checks with the number behind each.
        records: Per detector, per-input arrays (labels, clean predictions and scores, the oblivious and worst-case
            outcomes at each operating point: broken, attack, distortions, scores, costs).
        timing: Seconds per unit of work (kept apart: everything else is deterministic).
    """

    settings: dict[str, Any]
    rows: list[dict[str, Any]]
    diagnostics: dict[str, list[dict[str, Any]]]
    records: dict[str, dict[str, Any]]
    timing: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ views
    def table(self) -> str:
        """The summary as a Markdown table (one row per detector; rates with Wilson 95% intervals)."""
        fprs = self.settings["fprs"]
        cols = ["detector", "clean acc", "realised FPR"]
        for f in fprs:
            cols += [f"robust acc @{_pct(f)}", f"SR@{_pct(f)}"]
        cols += ["oblivious SR@" + _pct(fprs[0]), "broke most", "warnings"]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in self.rows:
            cells = [r["detector"], _fmt(r["clean_accuracy"]), _fmt(r["realised_fpr"])]
            for f in fprs:
                cells += [_fmt(r["worst"][str(f)]["robust_accuracy"]), _fmt(r["worst"][str(f)]["sr"])]
            warns = sum(c["verdict"] == "WARN" for c in self.diagnostics.get(r["detector"], []))
            cells += [_fmt(r["oblivious"][str(fprs[0])]), r["top_attack"], str(warns)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

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
            ValueError: If the text is not a report of this format.
        """
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ValueError(f"not a report: invalid JSON ({e})") from e
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not an rce-art evaluation report (format {FORMAT})")
        return cls(d["settings"], d["rows"], d["diagnostics"], d["records"], timing or {})

    def to_markdown(self) -> str:
        """The report as Markdown: diagnostics first, then the table, the attacks' shares and the settings."""
        s = self.settings
        out = [f"# Robustness report (rce-art {s.get('versions', {}).get('rce-art', '?')})", "",
               (f"{s['n']} inputs, eps {s['eps']} ({s['norm']}, pixel units), operating points (FPR) {s['fprs']}, "
               f"budget {s['budget']}, attacks in order: {', '.join(s['attacks'])}. Rates with Wilson 95% intervals; "
               "an attack succeeds only if the input is misclassified AND not flagged."), "", "## Diagnostics", ""]
        for det, rows in self.diagnostics.items():
            out.append(f"**{det}**")
            out.append("")
            out += [f"- {r['verdict']}: {r['check']} ({r['evidence']})" for r in rows]
            out.append("")
        out += ["## Results", "", self.table(), "", "## Which attack broke the inputs (first operating point)", ""]
        for r in self.rows:
            shares = ", ".join(f"{a}: {k}" for a, k in r["broken_by"].items()) or "none"
            out.append(f"- {r['detector']}: {shares}; gradient evaluations per input {r['gradients_per_input']:.0f}")
        out += ["", "## Settings", "", "```json", json.dumps(s, indent=1, sort_keys=True, default=float), "```", ""]
        return "\n".join(out)

    def to_html(self, path: str | Path) -> Path:
        """Write one self-contained HTML file (figures embedded): the table, diagnostics, SR-vs-eps curves, score
        histograms at the threshold, ROC curves, settings and versions. Returns its path."""
        from rce_art.robustness.html import render_html

        path = Path(path)
        atomic_write(path, render_html(self))
        return path

    def write(self, folder: str | Path) -> None:
        """Write ``report.json``, ``report.md``, ``report.html`` and ``timing.json`` into ``folder`` (atomically)."""
        folder = Path(folder)
        atomic_write(folder / "report.json", self.to_json())
        atomic_write(folder / "report.md", self.to_markdown())
        atomic_write(folder / "timing.json", json.dumps(self.timing, indent=1, sort_keys=True))
        self.to_html(folder / "report.html")


def _pct(f: float) -> str:
    return f"{100 * f:g}"


def build_report(settings: dict[str, Any], units: list[str], results: dict[str, Any], labels: list[int]
                 ) -> EvaluationReport:
    """Assemble the report from the units' results (see [`plan_units`][rce_art.robustness.evaluate])."""
    missing = [u for u in units if results.get(u) is None]
    if missing:
        raise ValueError(f"{len(missing)} units have no results yet (e.g. {missing[0]!r}); run the remaining shards "
                         "or the same command again")
    settings = {**settings, "versions": package_versions()}
    dets = list(dict.fromkeys(u.split("|")[0] for u in units))
    fprs = settings["fprs"]
    rows, diagnostics, records = [], {}, {}
    timing = {u: results[u]["timing"]["seconds"] for u in units}
    for d in dets:
        def cat(kind: str, field_: str, d: str = d) -> list[Any]:
            parts = sorted((int(u.split("|")[-1]), u) for u in units if u.startswith(f"{d}|{kind}|"))
            return [v for _, u in parts for v in results[u][field_]]

        y = list(labels)
        fpr = {k: v for k, v in results[f"{d}|fpr"].items() if k != "timing"}
        clean_pred, clean_score = cat("clean", "pred"), cat("clean", "score")
        rec: dict[str, Any] = {"y": y, "clean_pred": clean_pred, "clean_score": clean_score,
                               "oblivious_misclassified": cat("oblivious", "misclassified"),
                               "oblivious_score": cat("oblivious", "score"), "thresholds": fpr["thresholds"]}
        row: dict[str, Any] = {"detector": d, "clean_accuracy": _rate(int(np.sum(np.array(clean_pred) == y)), len(y)),
                               "realised_fpr": _rate(fpr["flagged"], fpr["n"]), "nominal_fpr": fpr["nominal"],
                               "oblivious": {}, "worst": {}}
        mis, osc = np.array(rec["oblivious_misclassified"], bool), np.array(rec["oblivious_score"])
        for f in fprs:
            row["oblivious"][str(f)] = _rate(int((mis & (osc >= fpr["thresholds"][str(f)])).sum()), len(y))
            w = {k: cat(f"worst|{f}", k) for k in ("broken", "attack", "linf", "l2", "score", "flagged", "pred",
                                                    "gradients", "queries", "masking")}
            rec[f"worst@{f}"] = w
            k = int(np.sum(w["broken"]))
            row["worst"][str(f)] = {"sr": _rate(k, len(y)), "robust_accuracy": _rate(len(y) - k, len(y))}
        first = rec[f"worst@{fprs[0]}"]
        counts = Counter(a for a, b in zip(first["attack"], first["broken"]) if b)
        row["broken_by"] = dict(counts.most_common())
        row["top_attack"] = counts.most_common(1)[0][0] if counts else "-"
        row["gradients_per_input"] = float(np.mean(first["gradients"]))
        masking = int(np.sum(first["masking"]))
        diag = results.get(f"{d}|diagnostics")
        diag = None if diag is None else {k: v for k, v in diag.items() if k != "timing"}
        diagnostics[d] = check_rows(diag, fpr, masking, len(y))
        rec["diagnostics"] = diag
        rows.append(row)
        records[d] = rec
    return EvaluationReport(settings, rows, diagnostics, records, timing)
