"""Every detector of the family side by side, on CE and RCE models, under the paired protocol.

Detectors: K-density (``kd``), Bayesian uncertainty (``bu``), KD+BU (``kdbu``), LID (``lid``), Mahalanobis
(``mahalanobis``: plain, final hidden layer; ``mahalanobis-lr``: three layers, input pre-processing, regression),
confidence and non-ME. Models are small CNNs with dropout 0.5 (BU needs it), trained with CE and RCE.

Protocol (split first, then fit): the attacked test inputs are split into set I (``--combiner-fraction``,
20% as in the ER paper) and set II (the rest). Detectors with a logistic-regression combiner are fitted on
set I (clean + matched-noise negatives vs adversarial examples of one attack); every threshold is calibrated on
other clean test inputs (5% FPR); everything is reported on set II only. Reported per detector: AUC and TPR at
5% FPR over the kept pairs (clean correct, attacked wrong), and ACC-NADV / ACC-COM at the calibrated threshold.
Combiners are also tested on the other attacks (cross-attack, ER paper Tables 6-8). ``--seeds`` repeats the
whole run (model training, splits, noise) and reports mean and spread: LID is known to move between retrains.

    python examples/compare_detectors.py                                   # digits, 3 seeds, minutes on 2 CPU cores
    python examples/compare_detectors.py --dataset fashion-mnist --data-dir D --n-examples 1000 --seeds 0
"""

from __future__ import annotations

import time

import _common as C
import numpy as np

import rce_art as ra

DETECTORS = ("kd", "bu", "kdbu", "lid", "mahalanobis", "mahalanobis-lr", "confidence", "non-me")
COMBINED = {"kdbu", "lid", "mahalanobis-lr"}
ATTACKS = ("fgsm", "bim", "jsma", "cw")


def make_detector(name: str, clf, seed: int, mc: int):
    """A detector of the family by name, with this script's settings (printed with every result)."""
    return {
        "kd": lambda: ra.KDensityDetector(clf, seed=seed),
        "bu": lambda: ra.BayesianUncertaintyDetector(clf, mc_samples=mc, seed=seed),
        "kdbu": lambda: ra.KDBUDetector(clf, mc_samples=mc, seed=seed),
        "lid": lambda: ra.LIDDetector(clf, k=20, n_reference=100, seed=seed),
        "mahalanobis": lambda: ra.MahalanobisDetector(clf, seed=seed),
        "mahalanobis-lr": lambda: ra.MahalanobisDetector(clf, layers=_maha_layers(clf), eps=0.002, seed=seed),
        "confidence": lambda: ra.ConfidenceDetector(clf),
        "non-me": lambda: ra.NonMEDetector(clf),
    }[name]()


def _maha_layers(clf) -> list[str]:
    prefix = "model." if isinstance(clf.model, ra.ReverseLogits) else ""
    return [f"{prefix}stem.2", f"{prefix}body.6", "features"]


def run_seed(args, data, seed: int, detectors, attacks, eps: float,
             keep_scores: bool) -> tuple[list[dict], list[dict], dict]:
    args.seed = seed
    x, y, x_cal, _ = C.white_box_split(data, args.n_examples, seed)
    n1 = max(2, int(round(args.combiner_fraction * len(x))))
    sets = {"I": slice(0, n1), "II": slice(n1, None)}
    models = C.train_models(args, data, dropout=0.5)
    records, cross, scores = [], [], {}
    for objective, clf in models.items():
        acc = C.accuracy(clf, data.x_test, data.y_test)
        advs = {a: C.build_paper_attack(a, clf, args, eps).generate(x) for a in attacks}
        plain = {d: make_detector(d, clf, seed, args.mc_samples).fit(data.x_train, data.y_train, x_calibration=x_cal)
                 for d in detectors if d not in COMBINED}
        combined = {(d, a): make_detector(d, clf, seed, args.mc_samples).fit(
                        data.x_train, data.y_train, x_adv=advs[a][sets["I"]], x_clean=x[sets["I"]], attack=a,
                        x_calibration=x_cal)
                    for d in detectors if d in COMBINED for a in attacks}
        for a in attacks:
            dets = {**plain, **{d: combined[(d, a)] for d in detectors if d in COMBINED}}
            xs, xa, ys = x[sets["II"]], advs[a][sets["II"]], y[sets["II"]]
            for r in ra.evaluation.evaluate_detectors(dets, xs, xa, ys, data.clip_values, objective=objective, attack=a,
                                           seed=seed, clean_acc=acc):
                records.append(r)
            if keep_scores:  # for the figure (first seed only)
                scores[(objective, a)] = {d: (det.score(xs), det.score(xa)) for d, det in dets.items()}
        for d in (d for d in detectors if d in COMBINED):
            # cross-attack: the combiner fitted on attack a scores attack b. Characteristics do not depend on the
            # combiner (same unsupervised fit), so they are computed once per input set.
            first = combined[(d, attacks[0])]
            ys = y[sets["II"]]
            logits_c, ch_clean = first.compute_characteristics(x[sets["II"]])
            for b in attacks:
                logits_b, ch_b = first.compute_characteristics(advs[b][sets["II"]])
                keep = ra.evaluation.kept_pairs(ys, logits_c.argmax(1).numpy(), logits_b.argmax(1).numpy())
                for a in attacks:
                    det = combined[(d, a)]
                    sc, sa = det.score_characteristics(ch_clean), det.score_characteristics(ch_b)
                    cross.append({"objective": objective, "detector": d, "fit_on": a, "test_on": b, "seed": seed,
                                  "auc": ra.evaluation.detection_auc(sc[keep], sa[keep])})
    return records, cross, scores


def summarise(records: list[dict], keys: tuple[str, ...], value: str) -> list[dict]:
    groups: dict[tuple, list[float]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r[value])
    out = []
    for k, v in groups.items():
        v = np.asarray(v, float)
        out.append({**dict(zip(keys, k)), value: float(np.nanmean(v)), f"{value}_sd": float(np.nanstd(v)),
                    "runs": int(np.isfinite(v).sum())})
    return out


def figures(scores: dict, path) -> None:
    plt = C.pyplot()
    from sklearn.metrics import roc_curve

    keys = sorted(scores)
    cols = min(4, len(keys))
    rows = -(-len(keys) // cols)
    fig, grid = plt.subplots(2 * rows, cols, figsize=(4.2 * cols, 4 * 2 * rows), squeeze=False)
    axes = np.empty((2, len(keys)), dtype=object)  # axes[0, j]: ROC of key j, axes[1, j]: its histogram
    for j in range(len(keys)):
        axes[0, j], axes[1, j] = grid[2 * (j // cols), j % cols], grid[2 * (j // cols) + 1, j % cols]
    for ax in grid.flat:  # cells of an incomplete last row
        ax.set_visible(any(ax is a for a in axes.flat))
    for j, key in enumerate(keys):
        for d, (sc, sa) in scores[key].items():
            f, t, _ = roc_curve(np.r_[np.zeros(sc.size), np.ones(sa.size)], -np.r_[sc, sa])
            axes[0, j].plot(f, t, label=f"{d} ({ra.evaluation.detection_auc(sc, sa):.2f})")
        axes[0, j].plot([0, 1], [0, 1], "k:", lw=0.8)
        axes[0, j].set_title(f"{key[0]} / {key[1].upper()}: ROC, all set-II inputs"), axes[0, j].legend(fontsize=6)
        sc, sa = scores[key].get("kd", next(iter(scores[key].values())))
        axes[1, j].hist(sc, bins=30, alpha=0.6, label="clean"), axes[1, j].hist(sa, bins=30, alpha=0.6, label="adv")
        axes[1, j].set_title(f"{key[0]} / {key[1].upper()}: K-density scores"), axes[1, j].legend(fontsize=7)
    fig.tight_layout(), fig.savefig(path, dpi=100), plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = C.common_parser(__doc__)
    parser.add_argument("--detectors", default=",".join(DETECTORS), help=f"comma-separated subset of {DETECTORS}")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated paper attacks")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (training, splits, noise)")
    parser.add_argument("--combiner-fraction", type=float, default=0.2, help="set I: share of the attacked inputs "
                        "that combiners are fitted on (ER paper: 20%%)")
    parser.add_argument("--mc-samples", type=int, default=50, help="MC-dropout passes of BU and KD+BU (paper: 50)")
    args = parser.parse_args(argv)
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = (set(detectors) - set(DETECTORS)) | (set(attacks) - set(ra.adapters.PAPER_ATTACKS))
    if unknown:
        parser.error(f"unknown detectors or attacks: {sorted(unknown)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    data = C.load_data(args)
    args.n_examples = args.n_examples or min(300, len(data.x_test) // 2)
    eps = args.eps if args.eps is not None else C.DEFAULT_EPS[args.dataset]
    print(f"settings: dataset={args.dataset} model={args.model} (dropout 0.5) epochs={C.default_epochs(args, len(data.x_train))} "
          f"n_examples={args.n_examples} (set I {args.combiner_fraction:.0%} fits combiners, set II evaluates) "
          f"attacks={attacks} eps={eps} detectors={detectors} mc_samples={args.mc_samples} LID k=20 reference=100 "
          f"Mahalanobis-lr eps=0.002 fpr=5% seeds={seeds} C&W={ra.settings.cw_settings(args.paper)}")
    records, cross, scores = [], [], {}
    for seed in seeds:
        r, c, s = run_seed(args, data, seed, detectors, attacks, eps, keep_scores=not scores)
        records += r
        cross += c
        scores = scores or s
    auc = summarise(records, ("attack", "objective", "detector"), "auc")
    by = {(r["attack"], r["objective"], r["detector"]): r for r in auc}
    rows = []
    for a in attacks:
        for o in ("CE", "RCE"):
            rows.append({"attack": a, "obj": o, **{d: f"{by[(a, o, d)]['auc']:.3f} ± {by[(a, o, d)]['auc_sd']:.3f}"
                                                   for d in detectors}})
    print(f"\nAUC on set II (mean ± sd over seeds {seeds}); combiners fitted on the same attack's set I")
    print(ra.evaluation.markdown_table(rows, ["attack", "obj", *detectors]))
    for value in ("tpr", "acc_nadv", "acc_com"):
        s = {(r["attack"], r["objective"], r["detector"]): r for r in summarise(records, ("attack", "objective",
                                                                                            "detector"), value)}
        print(f"\n{value} (mean over seeds)" + (" at 5% FPR over kept pairs" if value == "tpr" else
                                                 " at the calibrated threshold, all attacked inputs of set II"))
        print(ra.evaluation.markdown_table([{"attack": a, "obj": o, **{d: s[(a, o, d)][value] for d in detectors}}
                                 for a in attacks for o in ("CE", "RCE")], ["attack", "obj", *detectors]))
    if cross:
        cs = summarise(cross, ("objective", "detector", "fit_on", "test_on"), "auc")
        print("\nCross-attack AUC of the combiners (rows: fitted on; columns: tested on; mean over seeds)")
        for o in ("CE", "RCE"):
            for d in sorted({c["detector"] for c in cross}):
                m = {(c["fit_on"], c["test_on"]): c["auc"] for c in cs if c["objective"] == o and c["detector"] == d}
                print(f"{o} {d}:")
                print(ra.evaluation.markdown_table([{"fit on": a, **{b: m[(a, b)] for b in attacks}} for a in attacks],
                                        ["fit on", *attacks]))
    mean = {(o, d): float(np.nanmean([r["auc"] for r in auc if r["objective"] == o and r["detector"] == d]))
            for o in ("CE", "RCE") for d in detectors}
    print("\nWhere RCE helps, on this run (mean AUC over attacks and seeds, RCE vs CE):")
    for d in detectors:
        diff = mean[("RCE", d)] - mean[("CE", d)]
        print(f"- {d}: RCE {mean[('RCE', d)]:.3f} vs CE {mean[('CE', d)]:.3f} -> "
              f"{'RCE helps' if diff > 0.01 else 'RCE hurts' if diff < -0.01 else 'no difference (within 0.01)'}")
    fig_dir = args.out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures(scores, fig_dir / f"detectors-{args.dataset}.png")
    ra.evaluation.write_records(records, args.out / f"detectors-{args.dataset}-{args.model}")
    ra.evaluation.write_records(cross, args.out / f"detectors-cross-{args.dataset}-{args.model}")
    print(f"\nfigure: {fig_dir / f'detectors-{args.dataset}.png'}; total time {time.perf_counter() - t0:.0f}s")
    return {"records": records, "cross": cross, "auc": auc}


if __name__ == "__main__":
    main()
