"""ER-Classifier and ER-Detector (Li et al., "Defending Against Adversarial Examples by Regularized Deep
Embedding"): robustness (Figures 3-4, Tables 1-3), detection (Tables 5-8) and codes (Figures 5-6).

Models (all cached under ``--out/models``): No defence (CE), Madry PGD training and TRADES (ART's trainers),
ER-Classifier, ER-Classifier- (no min-max), ER-TRADES, and the ablations E-CLA (no critic) and VAE-CLA, on a
small CNN encoder with a linear map to a code of size ``--k``. The paper's architectures, lambda, k, critic and
PGD training settings are in its missing appendix: ours are printed with every result (see ``er_settings``).

Prints our numbers beside the paper's MNIST column and one sentence per claim:

- Figure 3/4: accuracy under l_inf PGD (ART) vs eps, every model (``--out/figures/er_robustness.png``).
- Table 1: AutoAttack (ART) on ``--n-examples`` random test inputs, Madry vs ER-Classifier.
- Table 2: C&W-L2 accuracy at the l2 bound 0.005 in both readings of its normalisation.
- Table 3: RayS (hard-label, ours: ``rce_art.RayS``) vs the white-box attacks on the same inputs.
- Tables 5-8: KD, LID, ER1, ER2: ACC-NADV, ACC-COM, ROC-AUC, TPR at 5% FPR, same- and cross-attack; and an
  adaptive attack on ER-Detector.
- Figures 5/6: t-SNE of codes, E-CLA vs ER-Classifier- (both without min-max, as the paper) and ER-Classifier,
  clean and adversarial (``er_tsne.png``).

    python examples/reproduce_er.py                                   # digits, quick settings
    python examples/reproduce_er.py --dataset fashion-mnist --data-dir D --n-examples 500 --n-detect 1000
"""

from __future__ import annotations

import time

import _common as C
import _er_detection as DET
import _er_eval as E
import _er_models as M
import numpy as np

import rce_art as ra
from rce_art.evaluation.paper_values import ER_TABLE1_AUTOATTACK, ER_TABLE2_CW, ER_TABLE3_RAYS
from rce_art.settings import ER_PAPER


def main(argv: list[str] | None = None) -> dict:
    parser = C.common_parser(__doc__)
    parser.add_argument("--k", type=int, default=32, help="code size (ours; the paper's is not given)")
    parser.add_argument("--lam", type=float, default=1.0, help="lambda of the critic term (ours)")
    parser.add_argument("--encoder-step", choices=("adam", "joint"), default="adam",
                        help="Algorithm 1's separate Adam step on the encoder (default) or the critic term in the "
                             "classification step (ours)")
    parser.add_argument("--train-eps", type=float, default=None, help="training PGD budget (default: --eps)")
    parser.add_argument("--eps-grid", type=float, nargs="+", default=None, help="Figure 3/4 eps values")
    parser.add_argument("--n-detect", type=int, default=1000, help="test inputs of the detection split")
    parser.add_argument("--models", nargs="+", choices=list(M.VARIANTS), default=list(M.VARIANTS))
    parser.add_argument("--skip", nargs="*", default=[], choices=("autoattack", "cw", "rays", "detection", "tsne"))
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    data = C.load_data(args)
    span = data.clip_values[1] - data.clip_values[0]
    eps = M.er_eps(args, data)
    s = M.er_settings(args, data)
    grid = args.eps_grid or [round(f * eps, 4) for f in (0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)]
    x, y = C.attack_subset(data, args.n_examples or (ER_PAPER["n_examples"] if args.paper else 300), args.seed)
    (args.out / "figures").mkdir(parents=True, exist_ok=True)
    print(f"settings: dataset={args.dataset} eps={eps:g} (pixel range {span:g}) n_examples={len(x)} "
          f"n_detect={args.n_detect} seed={args.seed} training (ours where the paper is silent)={s}")
    models = M.train_all(args, data, s, args.models)
    out: dict = {"settings": s}
    for name, clf in models.items():
        print(f"{name}: clean test accuracy {C.accuracy(clf, data.x_test, data.y_test):.4f}")

    print(f"\nFigures 3-4: accuracy under l_inf PGD (ART, 20 steps of eps/4, random start) at eps {grid}")
    out["robustness"] = E.robustness_curves(models, x, y, grid, args, args.out / "figures" / "er_robustness.png")
    acc_at = {r["model"]: r["accuracy"] for r in out["robustness"] if r["eps"] == max(e for e in grid if e <= eps)}
    claims = []
    if "ER-Classifier-" in models and "No defence" in models:
        pos = [r for r in out["robustness"] if r["eps"] > 0]
        better = all(r["accuracy"] > next(q["accuracy"] for q in pos if q["model"] == "No defence" and q["eps"] == r["eps"])
                     for r in pos if r["model"] == "ER-Classifier-")
        claims.append(f"Figure 3, ER-Classifier- beats No defence at every eps > 0: {'held' if better else 'did NOT hold'}")
    if {"ER-Classifier", "Madry"} <= set(models):
        claims.append(f"Figure 3, ER-Classifier >= Madry at eps {eps:g}: "
                      f"{'held' if acc_at['ER-Classifier'] >= acc_at['Madry'] else 'did NOT hold'} "
                      f"({acc_at['ER-Classifier']:.3f} vs {acc_at['Madry']:.3f})")
    if {"ER-Classifier-", "E-CLA", "VAE-CLA"} <= set(models):
        pos = [r for r in out["robustness"] if r["eps"] > 0]
        ok = all(r["accuracy"] > max(q["accuracy"] for q in pos if q["model"] in ("E-CLA", "VAE-CLA") and q["eps"] == r["eps"])
                 for r in pos if r["model"] == "ER-Classifier-")
        claims.append(f"Figure 4, ER-Classifier- beats E-CLA and VAE-CLA at every eps > 0: {'held' if ok else 'did NOT hold'}")

    n_small = min(len(x), ER_PAPER["n_examples"] if args.paper else 100)  # AutoAttack, C&W and RayS inputs
    xs, ys = x[:n_small], y[:n_small]
    white: dict[str, np.ndarray] = {}
    if "autoattack" not in args.skip:
        print(f"\nTable 1: AutoAttack at eps {eps:g} on {len(xs)} test inputs (paper MNIST: eps 0.3, 1,000 inputs)")
        out["autoattack"] = {}
        for name in ("Madry", "ER-Classifier"):
            if name in models:
                acc, correct, label = E.autoattack(models[name], xs, ys, eps, args)
                white[name] = correct
                out["autoattack"][name] = acc
                print(f"  {name:14s} {acc:.3f}   paper MNIST {ER_TABLE1_AUTOATTACK[name]['mnist'] / 100:.3f}   ({label})")
        if len(out["autoattack"]) == 2:
            a = out["autoattack"]
            claims.append(f"Table 1, ER-Classifier > Madry under AutoAttack: "
                          f"{'held' if a['ER-Classifier'] > a['Madry'] else 'did NOT hold'}")
    if "cw" not in args.skip and "ER-Classifier" in models:
        print(f"\nTable 2: C&W-L2 accuracy at the l2 bound 0.005, {len(xs)} inputs (paper MNIST: ER 99.1%, "
              f"Defense-GAN {ER_TABLE2_CW['Defense-GAN']}%)")
        out["cw"] = {n: E.cw_l2(models[n], xs, ys, args) for n in ("No defence", "ER-Classifier") if n in models}
        for n, r in out["cw"].items():
            print(f"  {n:14s} bound on ||d||_2/D (literal): {r['l2/D']:.3f}   on ||d||_2/sqrt(D) (RMS): "
                  f"{r['l2/sqrt(D)']:.3f}   ({r['settings']})")
        er_cw = out["cw"]["ER-Classifier"]["l2/D"]
        claims.append(f"Table 2, ER-Classifier >= 95% under C&W at ||d||_2/D <= 0.005: "
                      f"{'held' if er_cw >= 0.95 else 'did NOT hold'} ({er_cw:.3f})")
    if "rays" not in args.skip:
        print(f"\nTable 3: RayS (hard-label) at eps {eps:g} on the same {len(xs)} inputs (paper MNIST, ER: "
              f"{ER_TABLE3_RAYS['mnist']}%)")
        out["rays"] = {}
        for name in ("Madry", "ER-Classifier"):
            if name in models:
                acc, robust, info = E.rays(models[name], xs, ys, eps, args)
                if name not in white:  # no AutoAttack run: PGD is the white-box reference
                    white[name] = models[name].predict(E.pgd(models[name], xs, eps, args)).argmax(1) == ys
                wb = white[name]
                beats = int((~robust & wb).sum())
                out["rays"][name] = {"accuracy": acc, "white_box_accuracy": float(wb.mean()), "rays_beats_white_box": beats,
                                     **info}
                print(f"  {name:14s} RayS {acc:.3f} vs white-box {wb.mean():.3f}; inputs RayS breaks and the white-box "
                      f"attack does not: {beats} ({info})")
                claims.append(f"Table 3, {name}: RayS never beats the white-box attack (no sign of gradient masking): "
                              f"{'held' if beats == 0 else f'did NOT hold on {beats} inputs'}")
    if "detection" not in args.skip and {"No defence", "ER-Classifier"} <= set(models):
        print(f"\nDetection (Section 4.5): FGSM/PGD at eps {eps:g}, C&W-L2 within ||d||_2/D <= {DET.cw_bound(args)}")
        out["detection"] = DET.detection_tables(models["No defence"], models["ER-Classifier"], data, args, eps)
        DET.print_tables(out["detection"])
        print("\nAdaptive attack on ER-Detector (ER1, regression trained on PGD; not in the paper):")
        out["adaptive"] = DET.adaptive(models["ER-Classifier"], data, args, eps)
    shown = [n for n in ("E-CLA", "ER-Classifier-", "ER-Classifier") if n in models]
    if "tsne" not in args.skip and "E-CLA" in shown and len(shown) > 1:
        xt, yt = C.attack_subset(data, 500, args.seed)
        out["tsne"] = E.tsne_codes({n: models[n] for n in shown}, xt, yt, eps, args,
                                   args.out / "figures" / "er_tsne.png")
    print("\nClaims of the paper, on this run:")
    for line in claims:
        print(f"- {line}")
    if "detection" in out:
        DET.detection_claims(out["detection"])
    print(f"\ntotal time {time.perf_counter() - t0:.0f}s; figures in {args.out / 'figures'}")
    ra.evaluation.write_records([*out["robustness"], *out.get("detection", [])], args.out / f"er-{args.dataset}")
    return out


if __name__ == "__main__":
    main()
