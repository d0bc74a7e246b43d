"""The standard evaluation of one K-density detector, this tree against an older rce-art checkout, in one run.

The same trained network (trained once here, its weights handed to both), the same inputs and the same settings;
each tree runs ``rce_art.evaluate`` in its own subprocess (one after the other, never at once), with the standard
budget and diagnostics on, at the 5% and 50% operating points. This tree runs it twice: with the SR-vs-FPR curve's
extra operating points off (the work an 0.5 evaluation does) and with its defaults (what a user gets today).

    git worktree add /tmp/rce-art-0.5 73cc0aa      # 0.5 after its review
    python benchmarks/evaluate_speed.py --baseline /tmp/rce-art-0.5 --data-dir ../shared/data/fashion-mnist

Target (issue 29): at least 5x faster than 0.5 on digits (500 inputs) and on 28x28 Fashion-MNIST.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent.parent


def data(dataset: str, data_dir: str | None, n: int):
    import rce_art as ra

    if dataset == "digits":
        d = ra.load_dataset("digits")
        x_fit, y_fit = d.x_train[:-200], d.y_train[:-200]
        x, y = d.x_test[:n], d.y_test[:n]
        x_cal = np.concatenate([d.x_test[n:], d.x_train[-200:]])  # never seen by the network
    else:
        d = ra.load_dataset("fashion-mnist", data_dir=data_dir)
        x_fit, y_fit = d.x_train[:10_000], d.y_train[:10_000]
        x, y = d.x_test[:n], d.y_test[:n]
        x_cal = d.x_test[n : n + 1000]
    return d, x_fit, y_fit, x, y, x_cal


def train(dataset: str, data_dir: str | None, n: int, path: str) -> None:
    import rce_art as ra

    d, x_fit, y_fit, *_ = data(dataset, data_dir, n)
    torch.manual_seed(0)
    raw = ra.make_art_classifier(ra.SmallCNN(1, 10), d.input_shape, 10, d.clip_values, device_type="cpu")
    clf = ra.CETrainer(raw, epochs=10 if dataset == "digits" else 3, batch_size=64, verbose=False).fit(x_fit, y_fit)
    torch.save(clf.classifier.model.state_dict(), path)


def child(args: argparse.Namespace) -> None:
    """Runs inside the tree under test (``sys.path`` puts it first)."""
    warnings.simplefilter("ignore")
    import rce_art as ra

    d, x_fit, y_fit, x, y, x_cal = data(args.dataset, args.data_dir, args.n)
    net = ra.SmallCNN(1, 10)
    net.load_state_dict(torch.load(args.model, weights_only=True))
    clf = ra.make_art_classifier(net, d.input_shape, 10, d.clip_values, device_type="cpu")
    det = ra.KDensityDetector(clf, seed=0).fit(x_fit, y_fit, x_calibration=x_cal[: len(x_cal) // 2])
    has_curve = "curve_fprs" in inspect.signature(ra.evaluate).parameters  # 0.6 added the curve's extra points
    kw = {"curve_fprs": ()} if args.no_curve and has_curve else {}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        report = ra.evaluate(clf, {"kd": det}, x, y, x_calibration=x_cal[len(x_cal) // 2 :], eps=args.eps,
                             fprs=(0.05, 0.5), budget="standard", out=tmp, batch_size=100, verbose=False, **kw)
        wall = time.perf_counter() - t
    rows = report.rows if hasattr(report, "rows") else []
    print(json.dumps({"wall": wall, "version": ra.__version__, "table": report.table(), "n_rows": len(rows)}))


def run_tree(tree: Path, args: argparse.Namespace, model: str, dataset: str, no_curve: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", "--tree", str(tree), "--model", model, "--dataset", dataset,
           "--n", str(args.n), "--eps", str(args.eps)] + (["--data-dir", args.data_dir] if args.data_dir else []) + (
        ["--no-curve"] if no_curve else [])
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", help="a checkout of the older rce-art to compare with")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST's IDX files (without: digits only)")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tree", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--dataset", default="digits", help=argparse.SUPPRESS)
    p.add_argument("--no-curve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        sys.path.insert(0, args.tree)
        child(args)
        return 0
    if not args.baseline:
        p.error("--baseline PATH (a checkout of the rce-art to compare with) is required")
    ok = True
    print(f"settings: one K-density detector, {args.n} inputs, eps {args.eps}, operating points 5% and 50%, standard "
          f"budget, diagnostics on, batch 100, torch threads {torch.get_num_threads()}; baseline {args.baseline}")
    for dataset in ["digits"] + (["fashion-mnist"] if args.data_dir else []):
        with tempfile.TemporaryDirectory() as tmp:
            model = str(Path(tmp) / "net.pt")
            train(dataset, args.data_dir, args.n, model)
            new = run_tree(HERE, args, model, dataset, no_curve=True)
            full = run_tree(HERE, args, model, dataset, no_curve=False)
            old = run_tree(Path(args.baseline), args, model, dataset, no_curve=True)
        speed = old["wall"] / new["wall"]
        ok &= speed >= 5
        print(f"\n{dataset}: {old['version']} {old['wall']:.0f}s, {new['version']} {new['wall']:.0f}s -> {speed:.1f}x "
              f"faster (target >= 5x); {new['version']} with the SR-vs-FPR curve's extra operating points "
              f"{full['wall']:.0f}s")
        print(f"{old['version']}:\n{old['table']}\n{new['version']}:\n{new['table']}")
    print(f"\nall targets met: {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
