"""The ``rce-art`` command (also ``python -m rce_art``): evaluate a model file with detectors, re-render, merge shards.

    rce-art evaluate --model mypkg.models:make_net --weights net.safetensors --data test.npz \\
        --detectors kd,mahalanobis --eps 0.1 --out results/
    rce-art report results/
    rce-art merge results/ shard0/ shard1/

Every error is one line naming the fix, with exit status 2; nothing is written before the inputs are validated.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rce_art.report.cli_inputs import (
    UsageError,
    build_classifier,
    clip_range,
    load_npz,
    preprocessing_pair,
    rates,
)

__all__ = ["build_classifier", "load_npz", "main"]


def _data(args: argparse.Namespace) -> dict[str, np.ndarray]:
    if args.data is not None and args.dataset is not None:
        raise UsageError("pass --data FILE.npz or --dataset NAME, not both")
    if args.data is not None:
        arrays = load_npz(args.data)
    elif args.dataset is not None:
        from rce_art.data import load_dataset

        d = load_dataset(args.dataset, data_dir=args.data_dir)
        arrays = {"x": d.x_test, "y": d.y_test, "x_train": d.x_train, "y_train": d.y_train}
        args.clip = args.clip or ",".join(str(c) for c in d.clip_values)
    else:
        raise UsageError("pass the inputs: --data FILE.npz (arrays x, y) or --dataset NAME")
    x = arrays["x"]
    if x.ndim < 2:
        raise UsageError(f"x must be (N, C, H, W) (or (N, features)), got shape {x.shape}")
    if arrays["y"].shape != (len(x),):
        raise UsageError(f"y must have shape ({len(x)},) to match x, got {arrays['y'].shape}")
    n = len(x) if args.n is None else args.n
    if not 1 <= n <= len(x):
        raise UsageError(f"--n must be between 1 and the {len(x)} inputs of the data, got {n}")
    if "x_calibration" not in arrays:  # held-out clean inputs: the ones after the first n
        if len(x) - n < 20:
            raise UsageError(f"need held-out clean inputs to calibrate and measure false positives: give --n below "
                             f"{len(x) - 20} (the rest are held out) or an array x_calibration in the .npz")
        arrays["x_calibration"] = x[n:]
    arrays["x"], arrays["y"] = x[:n], arrays["y"][:n]
    if ("x_train" in arrays) != ("y_train" in arrays):
        raise UsageError("--data must hold both x_train and y_train (to fit detectors given by name), or neither")
    if "x_train" in arrays and arrays["y_train"].shape != (len(arrays["x_train"]),):
        raise UsageError(f"y_train must have shape ({len(arrays['x_train'])},) to match x_train, got "
                         f"{arrays['y_train'].shape}")
    return arrays


def _check_training_arrays(arrays: dict[str, np.ndarray], clf: Any) -> None:
    """x_train / y_train checked under their own names (evaluate would call them x_fit / y_fit)."""
    from rce_art._validation import check_inputs, check_labels

    if "x_train" in arrays:
        check_inputs(arrays["x_train"], name="x_train", input_shape=tuple(clf.input_shape), clip_values=clf.clip_values)
        check_labels(arrays["y_train"], len(arrays["x_train"]), int(clf.nb_classes), name="y_train")


def _evaluate(args: argparse.Namespace) -> int:
    from rce_art.report.evaluate import evaluate

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: each rank attacks its share, rank 0 reports
        from rce_art.distributed import init_distributed

        init_distributed()

    arrays = _data(args)
    x = arrays["x"]
    clip, preprocessing = clip_range(args.clip or "0,1"), preprocessing_pair(args.preprocessing)
    fprs, curve = rates(args.fprs, "--fprs"), rates(args.curve_fprs, "--curve-fprs")
    clf = build_classifier(args.model, args.weights, tuple(x.shape[1:]), clip, preprocessing)
    _check_training_arrays(arrays, clf)
    detectors = [d for d in args.detectors.split(",") if d]
    attacks = "standard" if args.attacks == "standard" else [a for a in args.attacks.split(",") if a]
    shard = None
    if args.shard is not None:
        from rce_art.distributed import parse_shard

        shard = parse_shard(args.shard)
    report = evaluate(clf, detectors, x.astype(np.float32, copy=False), arrays["y"],
                      x_calibration=arrays["x_calibration"].astype(np.float32, copy=False),
                      x_fit=arrays.get("x_train"), y_fit=arrays.get("y_train"), eps=args.eps, norm=args.norm,
                      attacks=attacks, fprs=fprs, curve_fprs=curve, budget=args.budget, out=args.out, batch_size=args.batch_size,
                      seed=args.seed, diagnostics=not args.no_diagnostics, binarization=args.binarization,
                      reference_robust_accuracy=args.reference_robust_accuracy, shard=shard, verbose=not args.quiet)
    if report is None:
        print(f"shard {args.shard}: results stored in {args.out}; merge the shards with: rce-art merge OUT "
              f"{args.out} ...")
        return 0
    print(report.table())
    print(f"\nwrote {args.out}/report.html, report.md, report.json")
    return 0


def _report(args: argparse.Namespace) -> int:
    from rce_art._files import atomic_write
    from rce_art.report.model import EvaluationReport
    from rce_art.report.render import render_html

    path = Path(args.folder) / "report.json"
    if not path.exists():
        raise UsageError(f"{path} does not exist: run rce-art evaluate --out {args.folder} first")
    try:
        report = EvaluationReport.from_json(path.read_text())
        texts = {"report.html": render_html(report), "report.md": report.to_markdown()}  # all rendered, then written
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not a report (not UTF-8 text: {e.reason})") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise UsageError(f"{path} is not a valid report ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
                         ) from None
    for name, text in texts.items():
        atomic_write(Path(args.folder) / name, text)
    print(report.table())
    return 0


def _merge(args: argparse.Namespace) -> int:
    from rce_art.report.merge import merge

    report = merge(args.out, args.shards)
    print(report.table())
    print(f"\nwrote {args.out}/report.html, report.md, report.json")
    return 0


def parser() -> argparse.ArgumentParser:
    """The ``rce-art`` argument parser."""
    from rce_art.report.evaluate import DEFAULT_CURVE_FPRS

    p = argparse.ArgumentParser(prog="rce-art", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate", help="evaluate a model and detectors against the standard worst-case ensemble")
    e.add_argument("--model", required=True, help="package.module:factory, a callable returning your nn.Module")
    e.add_argument("--weights", default=None, help="safetensors file or torch state dict (read weights-only)")
    e.add_argument("--data", default=None, help=".npz with x (N,C,H,W float32) and y; optional x_train, y_train, "
                   "x_calibration")
    e.add_argument("--dataset", default=None, help="a named dataset instead of --data (digits, fashion-mnist, ...)")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--n", type=int, default=None, help="evaluate the first N inputs (the rest are held out)")
    e.add_argument("--clip", default=None, help="pixel range LO,HI (default 0,1)")
    e.add_argument("--preprocessing", default=None, help="MEAN,STD applied before the model (ART preprocessing)")
    e.add_argument("--detectors", default="kd,mahalanobis,confidence")
    e.add_argument("--attacks", default="standard", help="'standard' or names of rce_art.adapters.ADAPTIVE_ATTACKS")
    e.add_argument("--eps", type=float, default=0.1, help="budget in pixel units")
    e.add_argument("--norm", default="linf", choices=("linf", "l2"))
    e.add_argument("--fprs", default="0.05,0.5", help="operating points (distinct false-positive rates)")
    e.add_argument("--curve-fprs", default=",".join(str(f) for f in DEFAULT_CURVE_FPRS),
                   help="extra operating points of the success-vs-FPR figure, attacked at the quick budget ('' = none)")
    e.add_argument("--budget", default="standard", choices=("quick", "standard"))
    e.add_argument("--batch-size", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--shard", default=None, metavar="I/N", help="run shard I of N (merge with rce-art merge)")
    e.add_argument("--no-diagnostics", action="store_true")
    e.add_argument("--binarization", action="store_true",
                   help="run the binarization test and its inverted form (Zimmermann et al. 2022) on 20 inputs")
    e.add_argument("--reference-robust-accuracy", type=float, default=None, metavar="FRACTION",
                   help="best known robust accuracy of a classifier at eps/2 (Tramer's bound is checked against it)")
    e.add_argument("--out", required=True, help="results folder (resumable; report files are written there)")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    r = sub.add_parser("report", help="re-render report.html and report.md from a folder's report.json")
    r.add_argument("folder")
    m = sub.add_parser("merge", help="merge the folders of --shard runs into one report")
    m.add_argument("out")
    m.add_argument("shards", nargs="+")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rce-art``; returns the exit status."""
    args = parser().parse_args(argv)
    from rce_art.evaluation.store import CorruptResultError

    try:
        return {"evaluate": _evaluate, "report": _report, "merge": _merge}[args.command](args)
    except (UsageError, ValueError, TypeError, FileNotFoundError, PermissionError, CorruptResultError) as e:
        msg = " ".join(str(e).split())
        print(f"rce-art: error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, read-only file system, ...: one line, no traceback
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"rce-art: error: cannot read or write a file{where}: {e.strerror or e}; free space or pass another "
              "--out", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
