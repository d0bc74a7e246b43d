"""Strength study of adaptive attacks: every toolkit attack on the detector-as-extra-class system, the per-input
worst case, and the strongest attack per unit of compute.

For CE and RCE models (small CNNs with dropout 0.5) and each detector of the family, at each eps:

* the standard worst-case ensemble (``rce_art.adapters.STANDARD_ENSEMBLE``, AutoAttack's discipline: each attack
  only on the inputs still unbroken) at the 5% and the 50% operating points: robust accuracy with detection (served
  AND not broken; a clean input rejected or misclassified is an error), SR@5 / SR@50 over the served inputs (those
  classified correctly and accepted on clean data), the all-inputs SR (secondary), Wilson 95% intervals;
* every single attack alone on all inputs at the 5% point (at the headline eps also at the 50% point): its SR,
  its shortfall from the worst case (AttackBench's "optimality" gap) and the fraction of inputs only it broke;
* at the headline eps, every single attack at ten times its default budget on the inputs the standard worst case
  left unbroken: what 10x the budget finds that the worst case missed (the worst case at its default budget is
  at least as strong as each single attack at 10x when this is 0 within its interval);
* ART's AutoAttack on the folded system against DetectorPGD's modes on the same inputs (headline eps).

    python examples/adaptive_study.py                                   # digits, about 30 minutes on 2 CPU cores
    python examples/adaptive_study.py --dataset fashion-mnist --data-dir D --eps-grid 0.1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import _common as C
import numpy as np
import torch
from compare_detectors import COMBINED, make_detector

import rce_art as ra
from rce_art.adapters import STANDARD_ENSEMBLE, STANDARD_ENSEMBLE_06, build_adaptive_attack
from rce_art.evaluation import WorstCaseEnsemble, operating_point_rates
from rce_art.exceptions import GradientMaskingWarning
from rce_art.metrics import wilson_interval

DETECTORS = ("kd", "bu", "kdbu", "lid", "mahalanobis", "mahalanobis-lr", "confidence", "non-me")
SINGLES = ("pgd-orthogonal", "pgd-selective", "pgd-combined", "apgd-ce", "apgd-t", "square", "rays", "cw-wb")
X10 = ("pgd-orthogonal", "pgd-selective", "pgd-combined", "apgd-ce", "apgd-t")
AT50 = ("pgd-orthogonal", "pgd-selective", "pgd-combined")


def _ci(k: int, n: int) -> str:
    if n == 0:
        return "- (n = 0)"
    lo, hi = wilson_interval(k, n)
    return f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = C.common_parser(__doc__)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--objectives", default="CE,RCE")
    parser.add_argument("--eps-grid", default=None, help="L-inf budgets, first = headline (digits 0.1,0.2)")
    parser.add_argument("--singles", default=",".join(SINGLES), help="attacks run alone")
    parser.add_argument("--x10", default=",".join(X10), help="attacks run at 10x budget on what the worst case left")
    parser.add_argument("--at50", default=",".join(AT50), help="single attacks also run at the 50%% operating point")
    parser.add_argument("--all-eps", action="store_true", help="single attacks at every eps (default: headline only)")
    parser.add_argument("--autoattack", default="CE", help="models on which ART's AutoAttack runs (headline eps)")
    parser.add_argument("--full", action="store_true", help="every single attack and every 10x run at every eps and "
                        "both operating points, AutoAttack on every model (hours on 2 CPU cores)")
    parser.add_argument("--mc-samples", type=int, default=20, help="MC-dropout passes of BU and KD+BU")
    parser.add_argument("--compare-06", action="store_true", help="also run 0.6's standard ensemble (ART's APGD-CE, "
                        "APGD-T and Square per true class: STANDARD_ENSEMBLE_06) at the 5%% point, on the same inputs")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, one torch thread each (the cells are "
                        "independent; small models use one core each better than two threads of one process)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--only", default=None, help="compute only these cells, e.g. RCE:lid,CE:kd (the others are "
                        "read from the cache when there): to add a process to a running study")
    args = parser.parse_args(argv)
    detectors = [d for d in args.detectors.split(",") if d]
    objectives = tuple(o for o in args.objectives.split(",") if o)
    grid = [float(e) for e in (args.eps_grid or ("0.1,0.2" if args.dataset == "digits" else "0.1")).split(",")]
    singles = [a for a in args.singles.split(",") if a]
    x10, at50 = [a for a in args.x10.split(",") if a], [a for a in args.at50.split(",") if a]
    aa = [o for o in args.autoattack.split(",") if o]
    if args.full:
        singles = [*SINGLES, "apgd-dlr", "fb-pgd"]
        x10, at50, aa, args.all_eps = singles, singles, list(objectives), True
    t0 = time.perf_counter()
    data = C.load_data(args)
    n = args.n_examples or 120
    x, y, x_cal, _ = C.white_box_split(data, n, args.seed)
    n1 = max(2, n // 6)
    x_fit, xs, ys = x[:n1], x[n1:], y[n1:]
    print(f"settings: dataset={args.dataset} model={args.model} (dropout 0.5) objectives={objectives} "
          f"attacked={len(xs)} (set I {n1} fits combiners on FGSM) calibration={len(x_cal)} detectors={detectors} "
          f"eps={grid} (headline {grid[0]}, L-inf, pixel units) standard={STANDARD_ENSEMBLE} singles={singles} "
          f"x10={x10} at50={at50} autoattack={aa} all_eps={args.all_eps} mc_samples={args.mc_samples} seed={args.seed}; budgets: DetectorPGD 50 steps, APGD 50 "
          "iterations (1 restart, 3 targets for APGD-T), Foolbox PGD 50 steps, Square and RayS 500 queries, "
          "C&W-wb 200 steps per round; intervals: Wilson 95%")
    models = C.train_models(args, data, objectives=objectives, dropout=0.5)
    records: list[dict] = []
    cache = args.out / "study-cache"
    cache.mkdir(parents=True, exist_ok=True)
    worker = None if args.worker is None else tuple(int(v) for v in args.worker.split("/"))
    if worker is None and args.jobs > 1:  # fan the cells out to workers, then read their results from the cache
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        argv_ = sys.argv[1:] if argv is None else list(argv)
        procs = [subprocess.Popen([sys.executable, __file__, *argv_, "--worker", f"{k}/{args.jobs}"], env=env)
                 for k in range(args.jobs)]
        if any(p.wait() for p in procs):
            raise SystemExit("a worker failed (its error is above)")
    if worker is not None:
        torch.set_num_threads(1)
    cell_index = -1
    for objective, clf in models.items():
        x_fgsm = C.build_paper_attack("fgsm", clf, args, 0.2).generate(x_fit)
        for d in detectors:
            cell_index += 1
            if worker is not None and cell_index % worker[1] != worker[0]:
                continue
            if args.only is not None and f"{objective}:{d}" not in args.only.split(","):
                continue
            tag = ("full" if args.full else "quick") + ("-c06" if args.compare_06 else "") + "-v07"  # 0.7: the standard ensemble on rce-art's own attacks
            key = cache / f"{args.dataset}-{objective}-{d}-{'-'.join(map(str, grid))}-{len(xs)}-{args.seed}-{tag}.json"
            if key.exists():
                records += json.loads(key.read_text())
                print(f"{objective} {d}: loaded {key}")
                continue
            kw = {"x_clean": x_fit, "x_adv": x_fgsm, "attack": "fgsm"} if d in COMBINED else {}
            det = make_detector(d, clf, args.seed, args.mc_samples).fit(data.x_train, data.y_train,
                                                                         x_calibration=x_cal, **kw)
            plan = {"singles": singles, "x10": x10, "at50": at50, "autoattack": objective in aa, "all_eps": args.all_eps,
                    "compare_06": args.compare_06}
            cell = _cell(det, xs, ys, grid, plan, objective=objective, detector=d)
            key.write_text(json.dumps(cell, default=float))
            records += cell
            print(f"{objective} {d}: done ({time.perf_counter() - t0:.0f}s)", flush=True)
    if worker is not None:
        return records
    _print(records, objectives, detectors, grid)
    _plot(records, objectives, detectors, grid, args)
    ra.evaluation.write_records(records, args.out / f"adaptive-study-{args.dataset}")
    print(f"\ntotal time {time.perf_counter() - t0:.0f}s")
    return records


def _clean(det, xs, ys, threshold) -> tuple[np.ndarray, np.ndarray]:
    """``(correct, flagged)`` of the clean inputs at ``threshold``."""
    report, _ = det.detect(xs)
    return report["predicted_class"] == ys, np.asarray(report["score"], np.float64) < threshold


def _served(det, xs, ys, fpr) -> np.ndarray:
    """Inputs classified correctly and accepted on clean data at the operating point ``fpr``."""
    correct, flagged = _clean(det, xs, ys, ra.detectors.calibrate_threshold(det.calibration_scores_.double().numpy(), fpr))
    return correct & ~flagged


def _run(attacks, det, xs, ys, fpr, **labels) -> tuple[dict, ra.evaluation.WorstCaseResult]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradientMaskingWarning)
        t = time.perf_counter()
        r = WorstCaseEnsemble(attacks).run(det, xs, ys, fpr=fpr)
        seconds = time.perf_counter() - t
    rates = operating_point_rates(*_clean(det, xs, ys, r.settings["threshold"]), r.broken)
    sr, rob, sr_all = rates["sr"], rates["robust_accuracy"], rates["sr_all"]
    rec = {**labels, "fpr": fpr, "n": len(ys), "served": sr["n"], "broken": sr["k"], "SR": sr["rate"],
           "SR_lo": sr["lo"], "SR_hi": sr["hi"], "robust_acc": rob["rate"], "robust_lo": rob["lo"],
           "robust_hi": rob["hi"], "broken_all": sr_all["k"], "SR_all": sr_all["rate"],
           "attack_failure": rates["attack_failure"]["rate"], "masking": int(r.masking.sum()), "seconds": seconds,
           "gradients_per_input": float(r.gradients.mean()), "queries_per_input": float(r.queries.mean()),
           "top_attack": max(((a["attack"], a["broken"]) for a in r.per_attack), key=lambda t: t[1])[0],
           "masking_warning": any(issubclass(w.category, GradientMaskingWarning) for w in caught)}
    return rec, r


def _cell(det, xs, ys, grid, plan, **labels) -> list[dict]:
    out: list[dict] = []
    for i, eps in enumerate(grid):
        head = i == 0
        std = [build_adaptive_attack(a, eps) for a in STANDARD_ENSEMBLE]
        wc = {}
        for fpr in (0.05, 0.5):
            rec, wc[fpr] = _run(std, det, xs, ys, fpr, **labels, eps=eps, attack="worst case (standard)", budget=1)
            out.append(rec)
        if plan.get("compare_06"):
            old = [build_adaptive_attack(a, eps) for a in STANDARD_ENSEMBLE_06]
            rec, _ = _run(old, det, xs, ys, 0.05, **labels, eps=eps, attack="worst case (0.6 members)", budget=1)
            out.append(rec)
        alone = {}
        if not (head or plan["all_eps"]):
            continue
        for name in plan["singles"] + (["art-autoattack"] if head and plan["autoattack"] else []):
            a = build_adaptive_attack(name, eps)
            if not a.applies_to(det):
                continue
            for fpr in ((0.05, 0.5) if name in plan["at50"] else (0.05,)):
                rec, r = _run([a], det, xs, ys, fpr, **labels, eps=eps, attack=name, budget=1)
                if fpr == 0.05:
                    alone[name] = r.broken
                out.append(rec)
        served = _served(det, xs, ys, 0.05)  # rates over the inputs served at the 5% point
        m = max(int(served.sum()), 1)
        for rec in out:
            if rec.get("eps") == eps and rec["attack"] in alone and rec["fpr"] == 0.05:
                others = np.zeros(len(ys), bool)
                for name, b in alone.items():
                    if name != rec["attack"]:
                        others |= b
                mine = alone[rec["attack"]] & served
                rec["shortfall"] = float((wc[0.05].broken & served).sum() - mine.sum()) / m
                rec["only_it"] = float((mine & ~others).sum()) / m
                rec["missed_by_worst_case"] = float((mine & ~wc[0.05].broken).sum()) / m
        if head:  # 10x budget on the served inputs the standard worst case left unbroken
            rest = served & ~wc[0.05].broken
            for name in plan["x10"]:
                a = build_adaptive_attack(name, eps, budget=10)
                if not a.applies_to(det) or not rest.any():
                    continue
                rec, r = _run([a], det, xs[rest], ys[rest], 0.05, **labels, eps=eps, attack=name, budget=10)
                k = int(r.broken.sum())
                lo, hi = wilson_interval(k, m)
                base = int((wc[0.05].broken & served).sum())
                _, wc_hi = wilson_interval(base, m)
                rec.update(n_attacked=int(rest.sum()), extra_over_worst_case=k / m, extra_lo=lo, extra_hi=hi,
                           bound_10x=(base + k) / m, worst_case_hi=wc_hi, holds=(base + k) / m <= wc_hi)
                rec.update(n=len(ys), served=m, broken=k, SR=float("nan"), SR_lo=float("nan"), SR_hi=float("nan"))
                out.append(rec)
    return out


def _ra(r: dict) -> str:
    return f"{r['robust_acc']:.2f} [{r['robust_lo']:.2f}, {r['robust_hi']:.2f}]"


def _print(records, objectives, detectors, grid) -> None:
    for eps in grid:
        rows = [r for r in records if r["eps"] == eps and r["budget"] == 1]
        print(f"\n## eps = {eps}: robust accuracy with detection and SR over the served inputs at the 5% (50%) "
              f"operating point, Wilson 95% intervals, n = {rows[0]['n'] if rows else 0} inputs")
        table = []
        for r in rows:
            if r["fpr"] != 0.05:
                continue
            at50 = next((q for q in rows if q["fpr"] == 0.5 and q["attack"] == r["attack"]
                         and q["detector"] == r["detector"] and q["objective"] == r["objective"]), None)
            table.append({"model": r["objective"], "detector": r["detector"], "attack": r["attack"],
                          "robust acc @5": _ra(r), "served @5": r["served"], "SR@5": _ci(r["broken"], r["served"]),
                          "robust acc @50": _ra(at50) if at50 else "-", "served @50": at50["served"] if at50 else "-",
                          "SR@50": _ci(at50["broken"], at50["served"]) if at50 else "-",
                          "SR@5 (all inputs)": f"{r['SR_all']:.2f}",
                          "shortfall": "-" if r.get("shortfall") is None else f"{r['shortfall']:.2f}",
                          "only it": "-" if r.get("only_it") is None else f"{r['only_it']:.2f}",
                          "grads/input": f"{r['gradients_per_input']:.0f}", "s": f"{r['seconds']:.1f}",
                          "masking": r["masking"]})
        print(ra.evaluation.markdown_table(table, ["model", "detector", "attack", "robust acc @5", "served @5", "SR@5",
                                        "robust acc @50", "served @50", "SR@50", "SR@5 (all inputs)", "shortfall",
                                        "only it", "grads/input", "s", "masking"]))
    head = grid[0]
    x10 = [r for r in records if r["eps"] == head and r["budget"] == 10]
    print(f"\n## 10x budget at eps {head}: fraction of the served inputs broken by the attack at 10x its default "
          "budget that the standard worst case (default budget) left unbroken (Wilson 95%); the attack's SR@5 at 10x is "
          "at most the worst case's SR@5 plus this; 'holds' = that bound is within the worst case's interval")
    print(ra.evaluation.markdown_table([{"model": r["objective"], "detector": r["detector"], "attack": r["attack"],
                              "attacked": r["n_attacked"],
                              "extra over worst case": _ci(r["broken"], r["served"]),
                              "bound on SR@5 at 10x": f"{r['bound_10x']:.2f} (<= {r['worst_case_hi']:.2f}?)",
                              "holds": "yes" if r["holds"] else "NO"} for r in x10],
                            ["model", "detector", "attack", "attacked", "extra over worst case", "bound on SR@5 at 10x",
                             "holds"]))
    print("\n## How much detection is left under the strongest attack (standard worst case at 5% FPR), and does RCE "
          "change it?")
    for eps in grid:
        for d in detectors:
            vals = {}
            for o in objectives:
                r = next((q for q in records if q["eps"] == eps and q["detector"] == d and q["objective"] == o
                          and q["attack"] == "worst case (standard)" and q["fpr"] == 0.05), None)
                if r:
                    vals[o] = r
            if not vals:
                continue
            parts = [f"{o}: robust accuracy with detection {_ra(r)} (SR@5 {_ci(r['broken'], r['served'])})"
                     for o, r in vals.items()]
            verdict = ""
            if "CE" in vals and "RCE" in vals:
                a, b = vals["CE"], vals["RCE"]
                overlap = not (a["robust_hi"] < b["robust_lo"] or b["robust_hi"] < a["robust_lo"])
                verdict = (" -> RCE: no difference in robust accuracy within the intervals" if overlap else
                           f" -> RCE {'more' if b['robust_acc'] > a['robust_acc'] else 'less'} robust")
            print(f"- eps {eps} {d}: " + "; ".join(parts) + verdict)


def _plot(records, objectives, detectors, grid, args) -> None:
    """Per eps: robust accuracy with detection at 5% FPR under the worst case (bars, Wilson 95% intervals) per detector
    and model, under each single attack as dots."""
    plt = C.pyplot()
    fig, axes = C.grid_axes(plt, len(grid), (7.5, 3.4), ncols=1)
    width = 0.8 / max(len(objectives), 1)
    for ax, eps in zip(axes, grid):
        for j, o in enumerate(objectives):
            xs_, ys_, err = [], [], [[], []]
            for i, d in enumerate(detectors):
                r = next((q for q in records if q["eps"] == eps and q["detector"] == d and q["objective"] == o
                          and q["attack"] == "worst case (standard)" and q["fpr"] == 0.05), None)
                if r is None:
                    continue
                xs_.append(i + (j - (len(objectives) - 1) / 2) * width)
                ys_.append(r["robust_acc"])
                err[0].append(r["robust_acc"] - r["robust_lo"]), err[1].append(r["robust_hi"] - r["robust_acc"])
                singles = [q["robust_acc"] for q in records if q["eps"] == eps and q["detector"] == d and q["objective"] == o
                           and q["budget"] == 1 and q["fpr"] == 0.05 and not q["attack"].startswith("worst")]
                ax.plot([xs_[-1]] * len(singles), singles, "k.", ms=3)
            ax.bar(xs_, ys_, width, yerr=err, capsize=2, label=f"{o} worst case")
        ax.set_xticks(range(len(detectors)), detectors, fontsize=8, rotation=20)
        ax.set_ylim(0, 1.02), ax.set_ylabel("robust acc. (detection) @5")
        ax.set_title(f"eps {eps} (bars: worst case; dots: single attacks)", fontsize=9)
    axes[0].legend(fontsize=7)
    (args.out / "figures").mkdir(parents=True, exist_ok=True)
    fig.tight_layout(), fig.savefig(args.out / "figures" / f"adaptive-study-{args.dataset}.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    np.seterr(all="ignore")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
