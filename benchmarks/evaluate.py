"""Overhead of ``rce_art.evaluate`` over the attacks it runs, and the wall time of a standard evaluation.

Side by side in one run, on digits with a small CNN and a fitted K-density detector:

- **overhead**: ``evaluate(..., out=folder, diagnostics=False)`` (validation, units stored atomically with
  checksums, the report in JSON / Markdown / HTML with its figures) vs the same attacks called directly on the same
  batches (clean detection, the oblivious PGD, the worst-case ensemble at each operating point). Target: <= 1.05x.
- **wall time** of the standard evaluation (standard budget, diagnostics on) of one detector on ``--n`` digits
  inputs (default 500: digits' test split has 540; the remaining 40 plus 200 training inputs the classifier never
  saw are the held-out calibration set).

    python benchmarks/evaluate.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import torch

import rce_art as ra
from rce_art.adapters import standard_ensemble
from rce_art.evaluation import WorstCaseEnsemble
from rce_art.report.evaluate import BUDGETS


def direct(det, x, y, eps, fprs, budget, batch_size):
    """The attacks of the evaluation, called directly (no storage, no report)."""
    for i in range(0, len(x), batch_size):
        xs, ys = x[i : i + batch_size], y[i : i + batch_size]
        det.detect(xs)
        ra.DetectorPGD(eps, mode="classifier", steps=max(1, round(50 * budget))).run(det, torch.as_tensor(xs),
                                                                                  torch.as_tensor(ys))
        for f in fprs:
            WorstCaseEnsemble(standard_ensemble(eps, budget=budget), batch_size=batch_size).run(det, xs, ys, fpr=f)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--overhead-n", type=int, default=100, help="inputs of the overhead comparison")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    data = ra.load_dataset("digits")
    torch.manual_seed(0)
    x_train, y_train = data.x_train[:-200], data.y_train[:-200]  # 200 training rows held out for calibration
    raw = ra.make_art_classifier(ra.SmallCNN(1, 10), data.input_shape, 10, data.clip_values, device_type="cpu")
    clf = ra.CETrainer(raw, epochs=10, batch_size=64, verbose=False).fit(x_train, y_train).classifier
    x, y = data.x_test[: args.n], data.y_test[: args.n]
    x_cal = np.concatenate([data.x_test[args.n :], data.x_train[-200:]])
    det = ra.KDensityDetector(clf, seed=0).fit(x_train, y_train, x_calibration=x_cal[: len(x_cal) // 2])
    held = x_cal[len(x_cal) // 2 :]
    fprs, budget, bs = (0.05, 0.5), "standard", 100
    print(f"settings: digits small CNN + K-density, eps={args.eps}, fprs={fprs}, budget={budget} "
          f"({BUDGETS[budget]}x), standard ensemble {ra.adapters.STANDARD_ENSEMBLE}, batch size {bs}, "
          f"torch threads {torch.get_num_threads()}, best of {args.repeats}")
    xo, yo = x[: args.overhead_n], y[: args.overhead_n]
    t_eval, t_direct = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            ra.evaluate(clf, {"kd": det}, xo, yo, x_calibration=held, eps=args.eps, fprs=fprs, budget=budget,
                        curve_fprs=(), out=tmp, batch_size=bs, diagnostics=False, verbose=False)
            t_eval.append(time.perf_counter() - t)
        t = time.perf_counter()
        direct(det, xo, yo, args.eps, fprs, BUDGETS[budget], bs)
        t_direct.append(time.perf_counter() - t)
    ratio = min(t_eval) / min(t_direct)
    print(f"overhead on {len(xo)} inputs: evaluate {min(t_eval):.1f}s vs the same attacks called directly "
          f"{min(t_direct):.1f}s -> {ratio:.3f}x (target <= 1.05x)")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        report = ra.evaluate(clf, {"kd": det}, x, y, x_calibration=held, eps=args.eps, fprs=fprs, budget=budget,
                             out=tmp, batch_size=bs, verbose=False)
        wall = time.perf_counter() - t
    print(f"standard evaluation of one detector on {len(x)} digits inputs (diagnostics and the extra operating "
          f"points {ra.report.DEFAULT_CURVE_FPRS} at the quick budget on): {wall:.0f}s "
          f"({1e3 * wall / len(x):.0f} ms per input)\n")
    print(report.table())
    print(f"\ntarget met: {ratio <= 1.05}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
