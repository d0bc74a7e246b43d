"""The report's figures, embedded in ``report.html`` as PNG: success rate and robust accuracy against the
false-positive rate, success rate against eps, clean scores against the attacks' best attempts (histograms at each
threshold, ROC), and a gallery of broken inputs. Each is returned with a caption that says what it shows."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from rce_art.detectors.calibration import is_flagged

__all__ = ["figures", "percent"]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def percent(f: Any) -> str:
    """A false-positive rate as the report prints it: ``0.05`` -> ``"5%"``."""
    return f"{100 * float(f):g}%"


def _yerr(r: dict[str, Any]) -> list[list[float]]:
    """Error-bar lengths below and above a rate record's value (its Wilson interval)."""
    return [[r["rate"] - r["lo"]], [r["hi"] - r["rate"]]]


def figures(report: Any) -> list[tuple[str, str, str]]:
    """``(title, HTML body, caption)`` of each figure; one explanatory paragraph without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [("Figures", "<p>matplotlib is not installed (pip install 'rce-art[plot]'): no figures.</p>", "")]
    return [_sr_vs_fpr(report, plt), _sr_vs_eps(report, plt), _histograms(report, plt), _roc(report, plt),
            *_galleries(report, plt)]


def _sr_vs_fpr(report: Any, plt: Any) -> tuple[str, str, str]:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for row in report.rows:
        pts = sorted(row["curve"], key=lambda c: c["realised_fpr"]["rate"])
        for ax, key in zip(axes, ("sr", "robust_accuracy")):
            xs = [c["realised_fpr"]["rate"] for c in pts]
            line = ax.plot(xs, [c[key]["rate"] for c in pts], "--", lw=1, label=str(row["detector"]))[0]
            for c, x in zip(pts, xs):
                r = c[key]
                main = str(c["fpr"]) in row["points"]
                ax.errorbar([x], [r["rate"]], yerr=_yerr(r) if main else None,
                            fmt="o", mfc=line.get_color() if main else "white", color=line.get_color(), capsize=3,
                            ms=6 if main else 5)
    axes[0].set_ylabel("SR over the served inputs"), axes[1].set_ylabel("robust accuracy with detection")
    for ax in axes:
        ax.set_xlabel("realised false-positive rate (held-out clean inputs)"), ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(left=0)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"filled: main operating points ({report.settings['budget']} budget, Wilson 95%); open: extra points "
                 "at the quick budget (a fifth of the iterations)", fontsize=8)
    caption = (f"Each detector attacked by the worst-case ensemble at each operating point. Filled markers with Wilson "
               f"95% intervals: the main operating points {report.settings['fprs']} at the "
               f"{report.settings['budget']} budget; open markers: the extra points at the quick budget (a fifth of "
               "the iterations and queries; a cheaper attack can only understate SR there). x: the realised FPR on "
               "held-out clean inputs at the threshold attacked.")
    return "Success rate and robust accuracy against the false-positive rate", _png(fig), caption


def _sr_vs_eps(report: Any, plt: Any) -> tuple[str, str, str]:
    fprs = list(report.settings["fprs"])
    fig, axes = plt.subplots(1, len(fprs), figsize=(4.6 * len(fprs), 3.5), squeeze=False)
    from rce_art.report.diagnostics import success_at

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, f in zip(axes[0], fprs):
        for k, row in enumerate(report.rows):
            d, color = row["detector"], colors[k % len(colors)]
            diag, p = report.records[d].get("diagnostics"), row["points"][str(f)]
            if diag:
                ys = [success_at(o, p["threshold"]) for o in diag["by_eps"]]
                ax.plot(diag["eps_curve"], ys, marker="o", ms=3, color=color, label=f"{d} (selective PGD)")
            r = p["sr_all"]
            ax.errorbar([report.settings["eps"]], [r["rate"]], yerr=_yerr(r),
                        fmt="s", capsize=3, color=color, label=f"{d} worst case")
        ax.set_title(f"operating point {percent(f)} FPR", fontsize=9), ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"eps ({report.settings['norm']}, pixel units)"), ax.set_ylabel("SR (all inputs)")
    axes[0][0].legend(fontsize=7)
    caption = ("Lines: selective DetectorPGD on the first inputs (the sanity inputs) at multiples of eps; squares: the "
               "worst-case ensemble at eps. All-inputs SR, at each operating point's threshold; success must not "
               "fall as eps grows.")
    return "Success rate against eps", _png(fig), caption


def _histograms(report: Any, plt: Any) -> tuple[str, str, str]:
    fprs, dets = list(report.settings["fprs"]), list(report.records)
    fig, axes = plt.subplots(len(dets), len(fprs), figsize=(4.2 * len(fprs), 2.8 * len(dets)), squeeze=False)
    for i, d in enumerate(dets):
        rec = report.records[d]
        for j, f in enumerate(fprs):
            ax = axes[i][j]
            clean, adv = np.asarray(rec["clean_score"], float), np.asarray(rec[f"worst@{f}"]["score"], float)
            both = np.concatenate([clean, adv])
            bins = np.histogram_bin_edges(both[np.isfinite(both)], bins=30)
            ax.hist(clean, bins=bins, alpha=0.6, histtype="stepfilled", label="clean")
            ax.hist(adv, bins=bins, alpha=0.6, histtype="stepfilled", label="attack's best attempt")
            ax.axvline(float(rec["thresholds"][str(f)]), color="k", ls="--", label="threshold")
            ax.set_title(f"{d} at {percent(f)} FPR", fontsize=9), ax.set_xlabel("score (higher = more normal)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.subplots_adjust(hspace=0.55, wspace=0.25)
    caption = ("Detector scores of the clean inputs and of the attacks' best attempt per input: the breaking example "
               "where the attack broke the input (score at or above the threshold, misclassified), else the "
               "misclassified example with the highest score the attacks returned (flagged), else the one closest to "
               "misclassified (largest classifier margin). Inputs left of the dashed threshold are flagged.")
    return "Scores of clean inputs and of the attacks' best attempts", _png(fig), caption


def _roc(report: Any, plt: Any) -> tuple[str, str, str]:
    from sklearn.metrics import roc_auc_score, roc_curve

    fprs = list(report.settings["fprs"])
    fig, axes = plt.subplots(1, len(fprs), figsize=(4.2 * len(fprs), 3.9), squeeze=False)
    for ax, f in zip(axes[0], fprs):
        for d, rec in report.records.items():
            clean, adv = np.asarray(rec["clean_score"], float), np.asarray(rec[f"worst@{f}"]["score"], float)
            labels, scores = np.r_[np.zeros(clean.size), np.ones(adv.size)], -np.r_[clean, adv]
            if not np.isfinite(scores).all() or clean.size == 0:
                continue
            fp, tp, _ = roc_curve(labels, scores)
            line = ax.plot(fp, tp, label=f"{d} (AUC {roc_auc_score(labels, scores):.2f})")[0]
            t = float(rec["thresholds"][str(f)])
            ax.plot([np.mean(is_flagged(clean, t))], [np.mean(is_flagged(adv, t))], "o", color=line.get_color())
        ax.plot([0, 1], [0, 1], "k:", lw=0.8), ax.set_title(f"attacked at {percent(f)} FPR", fontsize=9)
        ax.set_xlabel("clean inputs flagged"), ax.set_ylabel("best attempts flagged"), ax.legend(fontsize=7)
    caption = ("ROC of the detector separating the clean inputs from the attacks' best attempts (the attack ran at "
               "the operating point of the panel, marked with a dot). An AUC near 0.5 means the attacks' examples "
               "look as normal to the detector as clean inputs do.")
    return "ROC: clean inputs against the attacks' best attempts", _png(fig), caption


def _image(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(C, H, W)`` pixels in ``[lo, hi]`` as an ``(H, W, 3)`` image in ``[0, 1]``."""
    a = np.clip((np.asarray(a, float) - lo) / max(hi - lo, 1e-12), 0, 1)
    return np.repeat(a[0][..., None], 3, -1) if a.shape[0] == 1 else np.moveaxis(a, 0, -1)


GAP = (0.82, 0.88, 0.97)
"""Colour of the gaps between the gallery's tiles (not a grey: the tiles are greyscale)."""


def _mosaic(tiles: list[list[np.ndarray]], row_gap: int, col_gap: int) -> np.ndarray:
    """Rows of equal ``(H, W, 3)`` tiles as one image (one ``imshow``: fast for many tiles), a coloured gap above each
    row (room for its captions) and between columns."""
    h, w = tiles[0][0].shape[:2]
    out = np.empty((len(tiles) * (h + row_gap), len(tiles[0]) * (w + col_gap) - col_gap, 3))
    out[:] = GAP
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            top = i * (h + row_gap) + row_gap
            out[top : top + h, j * (w + col_gap) : j * (w + col_gap) + w] = tile
    return out


def _galleries(report: Any, plt: Any) -> list[tuple[str, str, str]]:
    lo, hi = (float(v) for v in report.settings["clip_values"])
    out = []
    for d, rec in report.records.items():
        items = [(f, g) for f, gs in rec.get("gallery", {}).items() for g in gs]
        if not items:
            continue
        shape = np.asarray(items[0][1]["x"]).shape
        if len(shape) != 3 or shape[0] not in (1, 3):
            out.append((f"Broken inputs: {d}", ("<p>The inputs are not images (C, H, W) with 1 or 3 channels: no "
                                                 "gallery.</p>"), ""))
            continue
        tiles: list[list[np.ndarray]] = [[], [], []]
        labels = []
        for f, g in items:
            x, xa = np.asarray(g["x"], float), np.asarray(g["x_adv"], float)
            delta = xa - x
            k = 0.5 * (hi - lo) / max(float(np.abs(delta).max()), 1e-12)
            i, w = int(g["index"]), rec[f"worst@{f}"]
            tiles[0].append(_image(x, lo, hi))
            tiles[1].append(_image(xa, lo, hi))
            tiles[2].append(_image(0.5 * (hi - lo) + lo + k * delta, lo, hi))
            clean = f"{percent(f)} FPR, y={rec['y'][i]}\nclean: pred {rec['clean_pred'][i]}, score {rec['clean_score'][i]:.3g}"
            adv = (f"{w['attack'][i]}: pred {w['pred'][i]}\nscore {w['score'][i]:.3g} "
                   f"(T {float(rec['thresholds'][str(f)]):.3g})")
            labels.append((clean, adv, f"perturbation x{k:.1f}\nL-inf {w['linf'][i]:.3g}"))
        h, w = shape[1], shape[2]
        row_gap, col_gap = max(2, round(0.45 * h)), max(1, round(0.2 * w))
        image = _mosaic(tiles, row_gap, col_gap)
        fig, ax = plt.subplots(figsize=(2.1 * len(items), 7.4))
        ax.imshow(image, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        for j, texts in enumerate(labels):
            for r, text in enumerate(texts):
                ax.text(j * (w + col_gap) + w / 2, r * (h + row_gap) + row_gap - 0.5, text, ha="center", va="bottom",
                        fontsize=7)
        caption = ("Broken inputs (the first of each operating point): the clean input, the adversarial example "
                   "(misclassified and not flagged: its score is at or above the threshold T), and the perturbation "
                   "magnified (mid-grey = no change).")
        out.append((f"Broken inputs: {d}", _png(fig), caption))
    return out
