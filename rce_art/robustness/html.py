"""One self-contained HTML file for an [`EvaluationReport`][rce_art.robustness.EvaluationReport]: the table, the
diagnostics, and figures embedded as PNG (SR-vs-eps curves, score histograms at the threshold, ROC curves)."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np

__all__ = ["render_html"]

STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}
th{background:#f3f3f3}.PASS{color:#176317;font-weight:bold}.WARN{color:#b00;font-weight:bold}
img{max-width:100%}pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:12px}"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _figures(report: Any) -> list[tuple[str, str]]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [("Figures", "<p>matplotlib is not installed (pip install 'rce-art[plot]'): no figures.</p>")]
    from sklearn.metrics import roc_curve

    dets = list(report.records)
    f0 = str(report.settings["fprs"][0])
    out = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for d in dets:
        diag = report.records[d].get("diagnostics")
        if diag:
            ax.plot(diag["eps_curve"], diag["success_by_eps"], marker="o", label=f"{d} (selective PGD)")
        r = next(r for r in report.rows if r["detector"] == d)["worst"][f0]["sr"]
        ax.errorbar([report.settings["eps"]], [r["rate"]], yerr=[[r["rate"] - r["lo"]], [r["hi"] - r["rate"]]],
                    fmt="s", capsize=3, label=f"{d} worst case")
    ax.set_xlabel(f"eps ({report.settings['norm']})"), ax.set_ylabel(f"SR@{float(f0) * 100:g}"), ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    out.append(("Success rate vs eps", _png(fig)))
    n = len(dets)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3), squeeze=False)
    for ax, d in zip(axes[0], dets):
        rec = report.records[d]
        clean, adv = np.array(rec["clean_score"]), np.array(rec[f"worst@{f0}"]["score"])
        bins = np.histogram_bin_edges(np.concatenate([clean, adv]), bins=30)
        ax.hist(clean, bins=bins, alpha=0.6, label="clean"), ax.hist(adv, bins=bins, alpha=0.6, label="worst case")
        ax.axvline(rec["thresholds"][f0], color="k", ls="--", label="threshold")
        ax.set_title(d, fontsize=9), ax.set_xlabel("score (higher = more normal)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    out.append(("Scores of clean and worst-case inputs at the threshold", _png(fig)))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for d in dets:
        rec = report.records[d]
        clean, adv = np.array(rec["clean_score"]), np.array(rec[f"worst@{f0}"]["score"])
        fpr, tpr, _ = roc_curve(np.r_[np.zeros(len(clean)), np.ones(len(adv))], -np.r_[clean, adv])
        ax.plot(fpr, tpr, label=d)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8), ax.set_xlabel("false-positive rate"), ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=7)
    out.append(("ROC: clean vs worst-case inputs", _png(fig)))
    return out


def _table(md: str) -> str:
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    body = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    th = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f'<table id="results"><tr>{th}</tr>{trs}</table>'


def render_html(report: Any) -> str:
    """The report as one HTML page (no external resources)."""
    s = report.settings
    parts = [(f"<!doctype html><html><head><meta charset='utf-8'><title>rce-art robustness report</title>"
             f"<style>{STYLE}</style></head><body><h1>Robustness report</h1>"),
             (f"<p>{s['n']} inputs, eps {s['eps']} ({html.escape(s['norm'])}, pixel units), operating points (FPR) "
             f"{s['fprs']}, budget {html.escape(s['budget'])}; attacks in order: {html.escape(', '.join(s['attacks']))}. "
             "Rates with Wilson 95% intervals; an attack succeeds only if the input is misclassified AND not flagged."
             "</p><h2>Diagnostics</h2><table id='diagnostics'><tr><th>detector</th><th>check</th><th>verdict</th>"
             "<th>evidence</th></tr>")]
    for d, rows in report.diagnostics.items():
        for r in rows:
            parts.append(f"<tr><td>{html.escape(d)}</td><td>{html.escape(r['check'])}</td>"
                         f"<td class='{r['verdict']}'>{r['verdict']}</td><td>{html.escape(r['evidence'])}</td></tr>")
    parts.append("</table><h2>Results</h2>" + _table(report.table()))
    for title, body in _figures(report):
        parts.append(f"<h2>{html.escape(title)}</h2>{body}")
    parts.append("<h2>Settings and versions</h2><pre>" + html.escape(json.dumps(s, indent=1, sort_keys=True,
                                                                                default=float)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
