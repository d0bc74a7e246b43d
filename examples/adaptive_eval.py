"""Adaptive attacks at fixed budgets against every detector: orthogonal and selective PGD (Bryniarski et al. 2022).

For CE, RCE and PDM models (small CNNs with dropout 0.5, which BU needs) and each detector of the family, PGD
within an L-inf ball attacks the classifier alone (``classifier``: the oblivious baseline), the classifier and the
detector's score together (``combined``), or switches between them (``selective``, ``orthogonal``). Reported per
(model, detector, attack, eps): SR@5 and SR@50 over the served inputs (those classified correctly and accepted on
clean data; success = misclassified AND not flagged, thresholds fixed on held-out clean inputs at 5% / 50% FPR), robust
accuracy with detection at 5% FPR (served AND not broken: a clean input rejected or misclassified is an error), the
all-inputs SR@5 (secondary), the AUC of clean vs attacked scores, and C&W-wb's success for K-density. Combiner
detectors are fitted on FGSM examples of a disjoint split (set I).
The eps grid is in pixel units of the [-0.5, 0.5] range (= [0, 1] units); the headline eps is 0.1.

    python examples/adaptive_eval.py                      # digits, about 9-10 minutes on 2 CPU cores
    python examples/adaptive_eval.py --dataset fashion-mnist --data-dir D --n-examples 500 --eps-grid 0.1
"""

from __future__ import annotations

import time

import _common as C
import numpy as np
import torch
from compare_detectors import COMBINED, make_detector

import rce_art as ra

DETECTORS = ("kd", "bu", "kdbu", "lid", "mahalanobis", "mahalanobis-lr", "confidence", "non-me")
MODES = ("classifier", "combined", "selective", "orthogonal")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = C.common_parser(__doc__)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--objectives", default="CE,RCE,PDM")
    parser.add_argument("--eps-grid", default="0.05,0.1,0.2,0.3", help="L-inf budgets; 0.1 is the headline")
    parser.add_argument("--steps", type=int, default=50, help="PGD steps (quick; the paper of Bryniarski et al.: 1000)")
    parser.add_argument("--mc-samples", type=int, default=20, help="MC-dropout passes of BU and KD+BU")
    parser.add_argument("--no-cw-wb", action="store_true", help="skip the unbounded C&W-wb row of K-density")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="quick C&W-wb iterations per binary-search round (default: rce_art.settings' 200)")
    parser.add_argument("--sanity-examples", type=int, default=10, help="inputs of the sanity checks per model x "
                        "detector (selective PGD at the headline eps; 0 = skip)")
    args = parser.parse_args(argv)
    detectors = [d for d in args.detectors.split(",") if d]
    modes = [m for m in args.modes.split(",") if m]
    objectives = tuple(o for o in args.objectives.split(",") if o)
    grid = [float(e) for e in args.eps_grid.split(",")]
    t0 = time.perf_counter()
    data = C.load_data(args)
    n = args.n_examples or 200
    x, y, x_cal, _ = C.white_box_split(data, n, args.seed)
    n1 = max(2, n // 5)
    x_fit, (xs, ys) = x[:n1], (x[n1:], y[n1:])
    print(f"settings: dataset={args.dataset} model={args.model} (dropout 0.5) objectives={objectives} n={n} "
          f"(set I {n1} fits combiners on FGSM, set II {len(xs)} attacked) calibration={len(x_cal)} clean inputs "
          f"detectors={detectors} modes={modes} eps={grid} steps={args.steps} step=eps/10 margin={ra.DetectorPGD(eps=1.0).margin} "
          f"detector_weight=1 restarts=1 mc_samples={args.mc_samples} seed={args.seed}")
    models = C.train_models(args, data, objectives=objectives, dropout=0.5)
    records, sanity = [], []
    head = 0.1 if 0.1 in grid else grid[0]
    for objective, clf in models.items():
        x_fgsm = C.build_paper_attack("fgsm", clf, args, 0.2).generate(x_fit)
        oblivious: dict[float, ra.attacks.DetectorPGDResult] = {}  # classifier mode: the same examples for every detector
        for d in detectors:
            kw = {"x_clean": x_fit, "x_adv": x_fgsm, "attack": "fgsm"} if d in COMBINED else {}
            det = make_detector(d, clf, args.seed, args.mc_samples).fit(data.x_train, data.y_train,
                                                                         x_calibration=x_cal, **kw)
            clean_scores, x_scores = det.score(x_cal), det.score(xs)
            clean_pred = det.detect(xs)[0]["predicted_class"]
            for eps in grid:
                for mode in modes:
                    pgd = ra.DetectorPGD(eps, mode=mode, steps=args.steps, seed=args.seed)
                    if mode == "classifier":  # never reads the detector: attacked once per model and eps
                        r = oblivious[eps] = oblivious.get(eps) or pgd.generate(det, xs, ys)
                    else:
                        r = pgd.generate(det, xs, ys)
                    report, _ = det.detect(r.x_adv.numpy())
                    adv_scores, pred = report["score"], report["predicted_class"]
                    records.append(ra.evaluation.adaptive_report(clean_scores, x_scores, adv_scores, pred, ys,
                                                      r.misclassified.numpy(), r.linf.numpy(), r.l2.numpy(),
                                                      clean_pred=clean_pred, objective=objective, detector=d,
                                                      attack=mode, eps=eps))
            if d == "kd" and not args.no_cw_wb:
                cw = ra.CarliniWagnerWB(**C.cw_wb_params(args)).generate(det, torch.as_tensor(xs), torch.as_tensor(ys))
                adv_scores = det.score(cw.x_adv.numpy())
                records.append(ra.evaluation.adaptive_report(clean_scores, x_scores, adv_scores,
                                                  det.detect(cw.x_adv.numpy())[0]["predicted_class"], ys,
                                                  cw.misclassified.numpy(), (cw.x_adv - torch.as_tensor(xs)).flatten(1)
                                                  .abs().amax(1).numpy(), cw.l2.numpy(), clean_pred=clean_pred,
                                                  objective=objective, detector=d, attack="cw-wb (unbounded)",
                                                  eps=float("nan")))
            if args.sanity_examples > 0:
                m = args.sanity_examples
                s = ra.evaluation.detector_pgd_sanity(ra.DetectorPGD(head, mode="selective", seed=args.seed), det,
                                                      xs[:m], ys[:m], budgets=(args.steps // 2, args.steps,
                                                                                2 * args.steps), unbounded_steps=100)
                sanity.append({"model": objective, "detector": d,
                               "success_by_budget": [round(v, 3) for v in s["success_by_budget"]],
                               "monotone": s["monotone"], "unbounded_misclassification": s["unbounded_misclassification"],
                               "zero_grad": s["zero_grad_fraction"], "nonfinite_grad": s["nonfinite_grad_fraction"]})
            print(f"{objective} {d}: done ({time.perf_counter() - t0:.0f}s)", flush=True)
    if sanity:
        print(f"\nSanity checks (selective PGD, eps {head}, {args.sanity_examples} inputs; success must not fall as steps "
              "double, unbounded misclassification should be 1.00, no zero / non-finite detector gradients)")
        print(ra.evaluation.markdown_table(sanity, ["model", "detector", "success_by_budget", "monotone",
                                         "unbounded_misclassification", "zero_grad", "nonfinite_grad"]))
    rows = [r for r in records if r["eps"] == head or r["attack"].startswith("cw-wb")]
    print(f"\nHeadline eps = {head} (L-inf, [0, 1] units): robust accuracy with detection @5 / served @5 / SR@5 and "
          "SR@50 over the served inputs / all-inputs SR@5 / AUC")
    print(ra.evaluation.markdown_table([{"model": r["objective"], "detector": r["detector"], "attack": r["attack"],
                              "robust_acc@5": r["robust_acc@5"], "served@5": r["served@5"], "SR@5": r["SR@5"],
                              "SR@50": r["SR@50"], "SR_all@5": r["SR_all@5"], "auc": r["auc"],
                              "misclassified": r["misclassified"]} for r in rows],
                            ["model", "detector", "attack", "robust_acc@5", "served@5", "SR@5", "SR@50", "SR_all@5",
                             "auc", "misclassified"]))
    best = {}
    for r in rows:
        if r["attack"] in ("selective", "orthogonal", "combined"):
            k = (r["objective"], r["detector"])
            best[k] = max(best.get(k, 0.0), r["SR@5"])
    print("\nStrongest adaptive PGD per detector at the headline eps (max SR@5 over combined, selective, orthogonal):")
    print(ra.evaluation.markdown_table([{"detector": d, **{o: best.get((o, d), float("nan")) for o in objectives}}
                             for d in detectors], ["detector", *objectives]))
    print("\nDoes training with RCE (or PDM) make a detector harder to evade at this budget? (lower SR@5 = harder)")
    for d in detectors:
        ce = best.get(("CE", d), float("nan"))
        for o in objectives[1:]:
            v = best.get((o, d), float("nan"))
            verdict = "harder" if v < ce - 0.05 else "easier" if v > ce + 0.05 else "no clear difference (within 0.05)"
            print(f"- {d}: {o} {v:.3f} vs CE {ce:.3f} -> {verdict}")
    _plot(records, detectors, objectives, grid, args)
    ra.evaluation.write_records(records, args.out / f"adaptive-{args.dataset}-{args.model}")
    print(f"\ntotal time {time.perf_counter() - t0:.0f}s")
    return records


def _plot(records, detectors, objectives, grid, args) -> None:
    plt = C.pyplot()

    fig, axes = C.grid_axes(plt, len(detectors), (3.4, 3.2), ncols=4)
    for ax, d in zip(axes, detectors):
        for o in objectives:
            for mode, ls in (("orthogonal", "-"), ("selective", "--"), ("classifier", ":")):
                pts = sorted((r["eps"], r["SR@5"]) for r in records
                             if r["detector"] == d and r["objective"] == o and r["attack"] == mode)
                if pts:
                    ax.plot(*zip(*pts), ls, marker="o", ms=3, label=f"{o} {mode}")
        ax.set_title(d), ax.set_xlabel("eps (L-inf)"), ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("SR@5"), axes[-1].legend(fontsize=6)
    (args.out / "figures").mkdir(parents=True, exist_ok=True)
    fig.tight_layout(), fig.savefig(args.out / "figures" / f"adaptive-{args.dataset}.png", dpi=100), plt.close(fig)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
