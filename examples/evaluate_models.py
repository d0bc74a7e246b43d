"""The standard worst-case evaluation (``rce_art.evaluate``) of CE- and RCE-trained networks with detectors by name.

Per training objective: the network of the reproduction scripts (cached in ``--out/models``, so Table 1's run is
reused), the detectors fitted by name on the training set (threshold on half of the held-out clean inputs), then
the standard ensemble at eps on ``--n-examples`` test inputs, at the 5% and 50% operating points, diagnostics on.
Prints each report's table (robust accuracy with detection, served, SR, realised FPR, all with Wilson 95% intervals)
and writes the report folders (``report.md``, ``report.html``) under ``--out``.

    python examples/evaluate_models.py --dataset mnist-5k --n-examples 500      # about 5 minutes on 2 CPU cores
"""

from __future__ import annotations

import time

import _common as C

import rce_art as ra


def main(argv: list[str] | None = None) -> dict[str, ra.report.EvaluationReport]:
    parser = C.common_parser(__doc__)
    parser.add_argument("--detectors", default="kd,confidence,non-me",
                        help=f"comma-separated names of {sorted(ra.report.DETECTOR_NAMES)}")
    parser.add_argument("--objectives", default="CE,RCE")
    parser.add_argument("--budget", choices=("standard", "quick"), default="standard")
    parser.add_argument("--binarization", action="store_true",
                        help="also run the binarization test and its inverted form (Zimmermann et al. 2022)")
    parser.add_argument("--reference-robust-accuracy", type=float, default=None,
                        help="best known robust accuracy of a classifier at eps/2 (Tramer's bound)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    data = C.load_data(args)
    eps = args.eps if args.eps is not None else C.DEFAULT_EPS[args.dataset]
    n = args.n_examples or 500
    n_cal = min(1000, len(data.x_test) - n)
    if n_cal < 100:
        parser.error(f"--n-examples {n} leaves {n_cal} of the {len(data.x_test)} test inputs for calibration; "
                     "leave at least 100")
    names = [d for d in args.detectors.split(",") if d]
    objectives = tuple(o for o in args.objectives.split(",") if o)
    print(f"settings: dataset={args.dataset} model={args.model} objectives={objectives} detectors={names} n={n} "
          f"calibration={n_cal} held-out clean test inputs eps={eps} (L-inf, pixel units of {data.clip_values}) "
          f"fprs=(0.05, 0.5) budget={args.budget} attacks={list(ra.adapters.STANDARD_ENSEMBLE)} seed={args.seed} "
          f"binarization={args.binarization} reference_robust_accuracy={args.reference_robust_accuracy}")
    models = C.train_models(args, data, objectives=objectives)
    reports = {}
    for objective, clf in models.items():
        print(f"\n## {objective}: test accuracy {C.accuracy(clf, data.x_test, data.y_test):.4f}")
        report = ra.evaluate(clf, names, data.x_test[:n], data.y_test[:n], x_calibration=data.x_test[n : n + n_cal],
                             x_fit=data.x_train, y_fit=data.y_train, eps=eps, budget=args.budget, seed=args.seed,
                             binarization=args.binarization,
                             reference_robust_accuracy=args.reference_robust_accuracy,
                             out=args.out / (f"evaluate-{args.dataset}-{args.model}-{objective.lower()}-{args.budget}"
                                             + ("-binarization" if args.binarization else "")),
                             verbose=not args.quiet)
        assert report is not None  # one process: the report, not a shard
        print(report.table())
        reports[objective] = report
    print(f"\ntotal time {time.perf_counter() - t0:.0f}s")
    return reports


if __name__ == "__main__":
    main()
