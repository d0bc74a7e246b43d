"""Table 2 of Pang et al. (2018): detection AUCs of six oblivious attacks x three metrics x {CE, RCE}.

For each attack (FGSM, BIM, ILCM, JSMA, C&W, C&W-hc) and each training objective, adversarial
examples are crafted against the model alone (the oblivious setting) and scored under the paper's
protocol: only pairs whose clean input is classified correctly and whose adversarial input is not.
Our AUCs and distortions are printed beside the paper's MNIST and CIFAR-10 values (ResNet-32), with
the time per crafted example (Table 5) and a sentence per claim saying whether it held on this run.

    python examples/reproduce_table2.py                       # digits, minutes on 2 CPU cores
    python examples/reproduce_table2.py --dataset fashion-mnist --model small --n-examples 1000 --bandwidth both

``--bandwidth both`` scores the same adversarial examples with two K-density detectors per model, the
data-driven bandwidth (``auto``) and the paper's (``paper``), and prints a table and the claims for each:
whether RCE beats CE on K-density can depend on the bandwidth.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import _common as C
import numpy as np

import rce_art as ra
from rce_art.evaluation import load_shards
from rce_art.evaluation.paper_values import TABLE2

ATTACKS = ("fgsm", "bim", "ilcm", "jsma", "cw", "cw-hc")
#: Detectors of the family that need no adversarial fit data, by ``--detectors`` name.
EXTRA = {"mahalanobis": ra.MahalanobisDetector, "confidence": ra.ConfidenceDetector, "non-me": ra.NonMEDetector,
         "bu": ra.BayesianUncertaintyDetector}
METRIC_COLS = (("distortion", "distortion", 2), ("auc_confidence", "Confidence", 3),
               ("auc_non_me", "non-ME", 3), ("auc_kdensity", "K-density", 3))


def _cell(ours: float, attack: str, objective: str, key: str, digits: int) -> str:
    paper = [TABLE2[ds].get(attack, {}).get(objective, {}).get(key, math.nan) for ds in ("mnist", "cifar10")]
    return " / ".join("n/a" if math.isnan(v) else f"{v:.{digits}f}" for v in (ours, *paper))


def average_rows(records: list[dict]) -> list[dict]:
    """One 'average' record per objective and bandwidth (mean over attacks of every numeric column)."""
    rows = []
    for objective, bandwidth in sorted({(r["objective"], r["bandwidth"]) for r in records}):
        mine = [r for r in records if r["objective"] == objective and r["bandwidth"] == bandwidth]
        row = {"attack": "average", "objective": objective, "bandwidth": bandwidth}
        for key in ("n_pairs", "success_rate", "distortion", "auc_confidence", "auc_non_me", "auc_kdensity",
                    "tpr_confidence", "tpr_non_me", "tpr_kdensity", "seconds_per_example"):
            vals = [r[key] for r in mine if not math.isnan(r[key])]
            row[key] = float(np.mean(vals)) if vals else math.nan
        rows.append(row)
    return rows


def paper_average(dataset: str, objective: str, key: str) -> float:
    return float(np.mean([TABLE2[dataset][a][objective][key] for a in ATTACKS]))


def claims(records: list[dict]) -> list[str]:
    """The paper's claims about Table 2, checked on these records, in words."""
    by = {(r["attack"], r["objective"]): r for r in records}
    out = []
    wins = [a for a in ATTACKS if by[(a, "RCE")]["auc_non_me"] > by[(a, "CE")]["auc_non_me"]]
    out.append(f"non-ME AUC is higher with RCE than with CE for {len(wins)}/{len(ATTACKS)} attacks "
               f"(paper: 6/6 on both datasets) -> {'holds' if len(wins) == len(ATTACKS) else 'does NOT fully hold'}")
    kd_ce, kd_rce = by[("average", "CE")]["auc_kdensity"], by[("average", "RCE")]["auc_kdensity"]
    out.append(f"average K-density AUC RCE {kd_rce:.3f} vs CE {kd_ce:.3f} (paper: 0.980 vs 0.955 MNIST, "
               f"0.962 vs 0.901 CIFAR-10) -> {'holds' if kd_rce >= kd_ce else 'does NOT hold'}")
    c_ce, c_rce = by[("average", "CE")]["auc_confidence"], by[("average", "RCE")]["auc_confidence"]
    out.append(f"average confidence AUC RCE {c_rce:.3f} vs CE {c_ce:.3f} (paper: RCE higher on both datasets) -> "
               f"{'holds' if c_rce > c_ce else 'does NOT hold'}")
    for a in ("cw", "cw-hc"):
        d_ce, d_rce = by[(a, "CE")]["distortion"], by[(a, "RCE")]["distortion"]
        out.append(f"{a.upper()} needs a larger distortion against RCE: {d_rce:.2f} vs CE {d_ce:.2f} "
                   f"(paper MNIST {TABLE2['mnist'][a]['RCE']['distortion']} vs {TABLE2['mnist'][a]['CE']['distortion']}) "
                   f"-> {'holds' if d_rce > d_ce else 'does NOT hold'}")
    return out


def print_table(records: list[dict], args, n: int, bandwidth: str) -> None:
    order = {a: i for i, a in enumerate((*ATTACKS, "average"))}
    rows = []
    for r in sorted(records, key=lambda r: (order[r["attack"]], r["objective"])):
        row = {"attack": r["attack"], "obj": r["objective"], "pairs": r["n_pairs"], "success": r["success_rate"],
               "sigma": r["sigma"]}
        for key, label, digits in METRIC_COLS:
            if r["attack"] == "average":
                paper = [paper_average(ds, r["objective"], key) for ds in ("mnist", "cifar10")]
                row[label] = " / ".join("n/a" if math.isnan(v) else f"{v:.{digits}f}" for v in (r[key], *paper))
            else:
                row[label] = _cell(r[key], r["attack"], r["objective"], key, digits)
        row["ms/example"] = r["seconds_per_example"] * 1e3
        rows.append(row)
    print(f"\nTable 2 ({args.dataset}, {args.model}, {n} examples, K-density bandwidth {bandwidth}): each cell is "
          "ours / paper MNIST / paper CIFAR-10 (paper: ResNet-32; AUCs in [0, 1]; distortion on the [0, 255] scale; "
          "confidence ranked by its log-odds, which has no float32 ties)")
    print(ra.evaluation.markdown_table(rows, ["attack", "obj", "pairs", "success", "sigma", "distortion", "Confidence", "non-ME",
                                   "K-density", "ms/example"], digits=3))
    extra = sorted({k[4:] for r in records for k in r if k.startswith("auc_") and k[4:] not in
                    ("confidence", "non_me", "kdensity")})
    if extra:
        print("\nMore detectors (AUC / TPR at 5% FPR over the kept pairs; ACC-NADV / ACC-COM at their thresholds):")
        print(ra.evaluation.markdown_table([{"attack": r["attack"], "obj": r["objective"],
                                  **{d: f"{r[f'auc_{d}']:.3f} / {r[f'tpr_{d}']:.3f} / {r[f'acc_nadv_{d}']:.3f} / "
                                        f"{r[f'acc_com_{d}']:.3f}" for d in extra}}
                                 for r in records if r["attack"] != "average"], ["attack", "obj", *extra]))
    if set(args.attacks) == set(ATTACKS):
        print(f"\nClaims of the paper, on this run (bandwidth {bandwidth}):")
        for line in claims(records):
            print(f"- {line}")


def finish(records: list[dict], args, n: int, bandwidths: tuple[str, ...]) -> list[dict]:
    """Average rows, the tables and claims per bandwidth, and the records on disk (whole, torchrun or merged run)."""
    records += average_rows(records)
    for bw in bandwidths:
        mine = [r for r in records if r["bandwidth"] == bw]
        for r in mine:
            r.setdefault("sigma", next(q["sigma"] for q in mine if q["objective"] == r["objective"] and "sigma" in q))
        print_table(mine, args, n, bw)
    ra.evaluation.write_records(records, args.out / f"table2-{args.dataset}-{args.model}")
    return records


def merge(args) -> list[dict]:
    """``--merge``: the records of a run from the results folder(s) of its ``--shard`` jobs."""
    parts, meta = load_shards(args.merge)
    args.dataset, args.model, args.attacks = meta["dataset"], meta["model"], meta["attacks"]
    args.out = args.out if args.out != Path("runs") else Path(args.merge[0]).parent
    records = []
    for key, part in parts.items():
        objective, attack, bw = key.split("|")
        info = part["info"]
        spe = sum(i["seconds_per_example"] * i["n_shard"] for i in info) / max(sum(i["n_shard"] for i in info), 1)
        rec = ra.evaluation.report_from_scores(part["scores"], attack=attack, objective=objective, bandwidth=bw,
                                    sigma=info[0]["sigma"])
        rec.update(backend=info[0]["backend"], seconds_per_example=spe, settings=info[0]["settings"])
        records.append(rec)
    n_shards = len(next(iter(parts.values()))["info"]) if parts else 0
    print(f"merged {n_shards} shards from {len(args.merge)} folder(s): {meta}")
    return finish(records, args, meta["n"], tuple(meta["bandwidths"]))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = C.common_parser(__doc__)
    parser.add_argument("--bandwidth", choices=("auto", "paper", "both"), default="auto",
                        help="K-density bandwidth: data-driven (default), the paper's sigma^2 = 1/0.26 (CE), "
                             "0.1/0.26 (RCE), or both side by side on the same adversarial examples")
    parser.add_argument("--attacks", nargs="+", choices=ATTACKS, default=list(ATTACKS))
    parser.add_argument("--detectors", default="", help="comma-separated extra detectors fitted on the training "
                        f"set, reported beside the paper's metrics: {sorted(EXTRA)} (combiner detectors need "
                        "adversarial fit data: see examples/compare_detectors.py)")
    C.add_shard_options(parser)
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args)
    extra = [d.strip() for d in args.detectors.split(",") if d.strip()]
    if set(extra) - set(EXTRA):
        parser.error(f"unknown --detectors {sorted(set(extra) - set(EXTRA))}; choose from {sorted(EXTRA)}")
    shard = C.setup_sharding(args, parser)
    if extra and (shard is not None or ra.distributed.is_distributed()):
        parser.error("--detectors is not supported with --shard or torchrun yet; run it in one process")
    with C.main_process_output():
        return run(args, extra, shard)


def run(args, extra: list[str], shard: tuple[int, int] | None) -> list[dict]:
    t_start = time.perf_counter()
    data = C.load_data(args)
    eps = args.eps if args.eps is not None else C.DEFAULT_EPS[args.dataset]
    x, y = C.attack_subset(data, args.n_examples, args.seed)
    bandwidths = ("auto", "paper") if args.bandwidth == "both" else (args.bandwidth,)
    sharded = shard is not None or ra.distributed.is_distributed()
    print(f"settings: dataset={args.dataset} model={args.model} n_examples={len(x)} eps={eps} backend={args.backend} "
          f"bandwidth={args.bandwidth} seed={args.seed} epochs={C.default_epochs(args, len(data.x_train))} "
          f"C&W={ra.settings.cw_settings(args.paper)}" + C.shard_note(shard))
    models = C.train_models(args, data)
    records: list[dict] = []
    parts: dict[str, dict] = {}
    for objective, clf in models.items():
        with C.threshold_unused():  # the paper's protocol reports AUCs and TPRs, not the threshold
            dets = {bw: ra.KDensityDetector(clf, bandwidth=f"paper-{objective.lower()}" if bw == "paper" else "auto",
                                            seed=args.seed).fit(data.x_train, data.y_train) for bw in bandwidths}
            others = {d: EXTRA[d](clf).fit(data.x_train, data.y_train) for d in extra}
        print(f"{objective}: test accuracy {C.accuracy(clf, data.x_test, data.y_test):.4f}, K-density sigma "
              + ", ".join(f"{bw}={d.bandwidth_:.4g}" for bw, d in dets.items()))
        for name in args.attacks:
            attack = C.build_paper_attack(name, clf, args, eps)
            if sharded:  # this process's / job's slice; per-example results gathered (torchrun) or saved (--shard)
                scores = ra.evaluation.sharded_example_scores(attack.generate, dets, x, y, data.clip_values,
                                                   block=C.ATTACK_BATCH, shard=shard)
            else:
                x_adv = attack.generate(x)
            for bw, det in dets.items():
                labels = {"attack": name, "objective": objective, "bandwidth": bw, "sigma": det.bandwidth_}
                info = {"backend": attack.backend, "seconds_per_example": attack.seconds_per_example,
                        "settings": attack.describe()}
                if shard is not None:
                    parts[f"{objective}|{name}|{bw}"] = {"scores": scores[bw], "info": {
                        **info, "sigma": det.bandwidth_, "n_shard": len(scores[bw]["y"])}}
                    print(f"  {attack.describe()}: shard of {len(scores[bw]['y'])} examples done", flush=True)
                    continue
                rec = (ra.evaluation.report_from_scores(scores[bw], **labels) if sharded else
                       ra.evaluation.evaluate_attack(det, x, x_adv, y, data.clip_values, detectors=others, **labels))
                rec.update(info)
                records.append(rec)
                print(f"  {attack.describe()}: {rec['n_pairs']} pairs, success {rec['success_rate']:.3f}, "
                      f"AUC K-density ({bw}) {rec['auc_kdensity']:.3f}, "
                      f"{attack.seconds_per_example * 1e3:.1f} ms/example", flush=True)
    if shard is not None:
        meta = {"dataset": args.dataset, "model": args.model, "attacks": list(args.attacks), "n": len(x), "eps": eps,
                "seed": args.seed, "bandwidths": list(bandwidths), "epochs": C.default_epochs(args, len(data.x_train)),
                "backend": args.backend, "paper": args.paper}
        # every job writes the run's one results folder (atomic, checksummed units bound to the run: a job of another
        # run is refused); jobs on machines without a shared folder write their own and --merge takes them all
        path = ra.evaluation.save_shard(args.out / f"table2-{args.dataset}-{args.model}-shards", parts, shard=shard,
                                        n=len(x), meta=meta)
        print(f"\nwrote shard {shard[0]} of {shard[1]} into {path}; when every shard is done: "
              f"python examples/reproduce_table2.py --merge {path}")
        return []
    records = finish(records, args, len(x), bandwidths)
    print(f"\ntotal time {time.perf_counter() - t_start:.0f}s")
    return records


if __name__ == "__main__":
    main()
