"""The report's Markdown and HTML forms, rendered from its rows. Every value that comes from a report file (labels,
names, verdicts, evidence, settings) is escaped: a crafted ``report.json`` cannot inject markup or script."""

from __future__ import annotations

import html
import json
import math
from typing import Any

from rce_art.evaluation.tables import escape_cell as _md
from rce_art.evaluation.tables import markdown_rows as markdown_table
from rce_art.report.figures import figures, percent

__all__ = ["DEFINITIONS", "check_renders", "markdown_table", "render_html", "render_markdown", "sentences",
           "settings_table", "summary_table"]

DEFINITIONS = (
    "Per operating point (a false-positive rate, FPR, and the threshold calibrated for it): an attack succeeds on an "
    "input (breaks it) only if its example is within the budget, misclassified AND not flagged; the inputs the system "
    "serves are those classified correctly and accepted on clean data. **Robust accuracy with detection** = the "
    "fraction of inputs served AND not broken: a clean input that is rejected or misclassified is an error (Tramer, "
    "ICML 2022; Chen et al., ICML 2023, robust accuracy with rejection at alpha = 0; Sheikholeslami et al., ICLR "
    "2021). **SR** = broken / served = 1 - robust accuracy / served rate. **Realised FPR**: held-out clean inputs "
    "flagged at the threshold attacked. Secondary: selective accuracy (accuracy on the accepted clean inputs), the "
    "all-inputs SR, and the attack-failure rate (1 - all-inputs SR, which counts clean rejections as failures of the "
    "attack: never a robust accuracy). Intervals: Wilson 95%. Definitions and references: docs/concepts.md.")


BOOTSTRAP_NOTE = (
    "The Wilson intervals hold the threshold fixed; the bootstrap resamples the calibration scores, the evaluated "
    "inputs and the held-out inputs together and re-fits the threshold each time (2.5% and 97.5% percentiles). The "
    "attacks' examples are held fixed, and an input broken at the attacked threshold stays broken in every resample "
    "(an attack re-run at a higher threshold would push its score that little further). Definitions: "
    "docs/concepts.md.")


def _fmt(r: dict[str, Any]) -> str:
    if not isinstance(r.get("rate"), (int, float)) or math.isnan(float(r["rate"])):
        return f"- (n = {int(r['n'])})"
    return f"{float(r['rate']):.3f} [{float(r['lo']):.3f}, {float(r['hi']):.3f}]"


def summary_table(report: Any) -> tuple[list[str], list[list[str]]]:
    """Header and rows (plain text) of the summary: one row per detector and operating point."""
    head = ["detector", "FPR", "realised FPR", "robust acc (detection)", "served", "SR (served)", "clean acc",
            "selective acc", "SR (all inputs)", "oblivious SR", "broke most", "warnings"]
    rows = []
    for r in report.rows:
        d = str(r["detector"])
        for f, p in r["points"].items():
            warns = sum(c["verdict"] == "WARN" for c in report.diagnostics.get(d, {}).get(f, []))
            rows.append([d, percent(f), _fmt(p["realised_fpr"]), _fmt(p["robust_accuracy"]), _fmt(p["served"]),
                         _fmt(p["sr"]), _fmt(r["clean_accuracy"]), _fmt(p["selective_accuracy"]), _fmt(p["sr_all"]),
                         _fmt(p["oblivious"]["sr"]), str(p["top_attack"]), str(warns)])
    return head, rows


def bootstrap_table(report: Any) -> tuple[list[str], list[list[str]]]:
    """Header and rows: each rate's Wilson interval beside its bootstrap interval with the threshold re-fitted on
    resamples of the calibration scores (``rce_art.evaluation.bootstrap_operating_point``)."""
    head = ["detector", "FPR", "resamples", "robust acc: Wilson", "bootstrap", "SR: Wilson", "bootstrap",
            "realised FPR: Wilson", "bootstrap", "threshold: bootstrap"]
    rows = []
    for r in report.rows:
        for f, p in r["points"].items():
            b = p.get("bootstrap")
            if b is None:
                continue
            rows.append([str(r["detector"]), percent(f), str(b["n_resamples"])] + [
                c for k in ("robust_accuracy", "sr", "realised_fpr") for c in (_fmt(p[k]), _fmt_b(b[k]))]
                + [f"{b['threshold']['rate']:.4g} [{b['threshold']['lo']:.4g}, {b['threshold']['hi']:.4g}]"])
    return head, rows


def _fmt_b(r: dict[str, Any]) -> str:
    return f"[{float(r['lo']):.3f}, {float(r['hi']):.3f}]"


def sentences(report: Any) -> list[str]:
    """One plain sentence per detector and operating point."""
    out = []
    n = int(report.settings["n"])
    for r in report.rows:
        for f, p in r["points"].items():
            ra, sr, served, fpr = p["robust_accuracy"], p["sr"], p["served"], p["realised_fpr"]
            identity = (f" = served {float(served['rate']):.3f} x (1 - SR {float(sr['rate']):.3f})"
                        if int(sr["n"]) else "")
            out.append(f"{r['detector']}: at {percent(f)} FPR (realised {_fmt(fpr)}), {served['k']} of {n} inputs are "
                       f"classified correctly and accepted on clean data; the attacks broke {sr['k']} of them, so the "
                       f"robust accuracy with detection is {_fmt(ra)}{identity}.")
    return out


def settings_table(settings: dict[str, Any]) -> list[list[str]]:
    """The settings as ``[key, value]`` rows (nested values as compact JSON)."""
    rows = []
    for k in sorted(settings):
        v = settings[k]
        rows.append([str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)])
    return rows


def _intro(report: Any) -> str:
    s = report.settings
    curve = s.get("curve_fprs") or []
    extra = f"; extra operating points {curve} at the quick budget (SR-vs-FPR figure)" if curve else ""
    return (f"{s['n']} inputs, eps {s['eps']} ({s['norm']}, pixel units), operating points (FPR) {s['fprs']} at the "
            f"{s['budget']} budget{extra}; attacks in order: {', '.join(map(str, s['attacks']))}.")


def render_markdown(report: Any) -> str:
    """The report as Markdown."""
    s = report.settings
    out = [f"# Robustness report (rce-art {_md(s.get('versions', {}).get('rce-art', '?'))})", "",
           _md(_intro(report)), ""]
    out += [f"- {_md(t)}" for t in sentences(report)]
    out += ["", "## Results", "", report.table(), "", DEFINITIONS, "", "## Diagnostics", ""]
    for det, points in report.diagnostics.items():
        for f, rows in points.items():
            out += [f"**{_md(det)} at {percent(f)} FPR**", ""]
            out += [f"- {_md(r['verdict'])}: {_md(r['check'])} ({_md(r['evidence'])})" for r in rows]
            out.append("")
    head, boot = bootstrap_table(report)
    if boot:
        out += ["## Intervals with the threshold's own uncertainty", "", BOOTSTRAP_NOTE, "", markdown_table(head, boot),
                ""]
    out += ["## Which attacks broke the inputs", ""]
    for r in report.rows:
        for f, p in r["points"].items():
            shares = ", ".join(f"{_md(a)}: {int(k)}" for a, k in p["broken_by"].items()) or "none"
            out.append(f"- {_md(r['detector'])} at {percent(f)} FPR: {shares}; gradient evaluations per input "
                       f"{float(p['gradients_per_input']):.0f}; broken only by a gradient-free attack: {int(p['masking'])}")
    out += ["", "## Success rate against the false-positive rate", ""]
    curve = [[r["detector"], percent(c["fpr"]), str(c["budget"]), _fmt(c["realised_fpr"]), _fmt(c["robust_accuracy"]),
              _fmt(c["sr"])] for r in report.rows for c in r["curve"]]
    out += [markdown_table(["detector", "FPR", "budget", "realised FPR", "robust acc (detection)", "SR (served)"],
                           curve), "", "## Settings", "", markdown_table(["setting", "value"], settings_table(s)), ""]
    return "\n".join(out)


def _html_table(head: list[str], rows: list[list[str]], table_id: str) -> str:
    th = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><tr>{th}</tr>{trs}</table>'


STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}
th{background:#f3f3f3}.PASS{color:#176317;font-weight:bold}.WARN{color:#b00;font-weight:bold}
img{max-width:100%}figcaption{font-size:13px;color:#555;max-width:900px}td{vertical-align:top}"""


def render_html(report: Any) -> str:
    """The report as one HTML page (no external resources; figures embedded as PNG)."""
    esc = html.escape
    parts = [("<!doctype html><html><head><meta charset='utf-8'><title>rce-art robustness report</title>"
              f"<style>{STYLE}</style></head><body><h1>Robustness report</h1><p>{esc(_intro(report))}</p><ul>")]
    parts += [f"<li>{esc(t)}</li>" for t in sentences(report)]
    parts.append("</ul><h2>Results</h2>" + _html_table(*summary_table(report), "results"))
    parts.append("<p>" + esc(DEFINITIONS.replace("**", "")) + "</p><h2>Diagnostics</h2>")
    diag = [[d, percent(f), r["check"], r["verdict"], r["evidence"]] for d, points in report.diagnostics.items()
            for f, rows in points.items() for r in rows]
    trs = "".join(f"<tr><td>{esc(str(d))}</td><td>{esc(f)}</td><td>{esc(str(c))}</td>"
                  f"<td class='{'PASS' if v == 'PASS' else 'WARN'}'>{esc(str(v))}</td><td>{esc(str(e))}</td></tr>"
                  for d, f, c, v, e in diag)
    parts.append("<table id='diagnostics'><tr><th>detector</th><th>FPR</th><th>check</th><th>verdict</th>"
                 f"<th>evidence</th></tr>{trs}</table>")
    head, boot = bootstrap_table(report)
    if boot:
        parts.append("<h2>Intervals with the threshold's own uncertainty</h2><p>" + esc(BOOTSTRAP_NOTE) + "</p>"
                     + _html_table(head, boot, "bootstrap"))
    for title, body, caption in figures(report):
        parts.append(f"<h2>{esc(title)}</h2><figure>{body}<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("<h2>Settings and versions</h2>" + _html_table(["setting", "value"],
                                                                settings_table(report.settings), "settings"))
    parts.append("</body></html>")
    return "\n".join(parts)


def check_renders(report: Any) -> None:
    """Render every text form (not the figures) so that a malformed report fails before anything is written."""
    render_markdown(report)
    summary_table(report)
    settings_table(report.settings)
