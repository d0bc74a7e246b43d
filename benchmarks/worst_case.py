"""Cost of the standard worst-case ensemble against its floor, 0.7's members beside 0.6's, measured in one run.

The floor (issue 29): per iteration of an attack, one batched forward and at most one input-only backward (weights
frozen) over the inputs it still attacks. For each member this script records, through the network's first layer, every
forward call (its rows, and whether an input gradient flowed back through it), and prices each call at its cheapest:
the measured time of one call of the detector-as-extra-class system on that many rows (a forward, or a forward +
input-only backward; timed here on a doubling grid of batch sizes and interpolated). The floor of an algorithm is the
price of 0.7's calls for it (one per iteration over the inputs still unbroken, plus the runner's own checks); 0.6's
member for the same algorithm (same budget, same inputs) is measured against the same floor. ``wall / floor`` is then
what a member spends beyond the network passes the algorithm needs (extra passes, Python, numpy round trips,
per-call objects, weight gradients); the counts show extra passes (ART's
APGD makes about 3 forwards per backward, its Square 3 per query), and ``calls per 100 inputs`` is the number of
batched network calls (issue 29 counted ~21,250 for 0.6's ensemble where ~760 are needed).

Side by side, in this order, on the same detector and inputs: 0.7's standard ensemble (rce-art's APGD-CE, selective
DetectorPGD, APGD-T, Square) and 0.6's (ART's APGD-CE, selective DetectorPGD, ART's APGD-T, ART's Square: the
``art-*`` names), each member alone on all inputs and the ensemble.

Also the wrapper's overhead: one forward + input-only backward of the system vs of the detector's own differentiable
score (``logits_and_score``). Targets: wrapper <= 1.1x; each of 0.7's members within 1.3x of its floor; 0.7's ensemble at least 5x faster than 0.6's; as strong
(broken inputs within the Wilson interval).

    python benchmarks/worst_case.py --data-dir ../shared/data/fashion-mnist   # digits 8x8 and Fashion-MNIST 28x28
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from _timing import best

import rce_art as ra
from rce_art.adapters import STANDARD_ENSEMBLE, STANDARD_ENSEMBLE_06, build_adaptive_attack
from rce_art.evaluation import WorstCaseEnsemble, count_network_passes
from rce_art.metrics import wilson_interval

LEGACY = STANDARD_ENSEMBLE_06


def setup(shape: tuple[int, ...], n_train: int, seed: int, data_dir: str | None = None):
    rng = np.random.default_rng(seed)
    if shape[-1] == 8 or data_dir:
        d = ra.load_dataset("digits") if shape[-1] == 8 else ra.load_dataset("fashion-mnist", data_dir=data_dir)
        x_train, y_train, x_test, y_test = d.x_train[:n_train], d.y_train[:n_train], d.x_test, d.y_test
    else:
        x_train = rng.uniform(-0.5, 0.5, size=(n_train, *shape)).astype(np.float32)
        y_train = (x_train.reshape(n_train, -1)[:, :10].argmax(1)).astype(np.int64)  # learnable synthetic labels
        x_test = rng.uniform(-0.5, 0.5, size=(800, *shape)).astype(np.float32)
        y_test = x_test.reshape(800, -1)[:, :10].argmax(1).astype(np.int64)
    torch.manual_seed(seed)
    net = ra.SmallCNN(shape[0], 10, width=32 if shape[-1] < 16 else 16, dropout=0.5)
    raw = ra.make_art_classifier(net, shape, 10, (-0.5, 0.5), device_type="cpu")
    clf = ra.CETrainer(raw, epochs=3, batch_size=64, verbose=False).fit(x_train, y_train).classifier
    det = ra.KDensityDetector(clf, seed=seed).fit(x_train, y_train, x_calibration=x_test[:300])
    return det, x_test[300:], y_test[300:]


def unit_costs(det, x: np.ndarray, repeats: int) -> dict[bool, tuple[np.ndarray, np.ndarray]]:
    """Seconds of one call of the system on ``r`` rows, ``r`` on a doubling grid up to ``len(x)``: ``{False: forward,
    True: forward + input-only backward}``, each as ``(rows, seconds)`` for interpolation."""
    system = ra.DetectorAsClass(det, fpr=0.05).eval()
    grid = sorted({*(2 ** k for k in range(int(np.log2(len(x))) + 1)), len(x)})
    out: dict[bool, tuple[np.ndarray, np.ndarray]] = {}
    for grad in (False, True):
        secs = []
        for r in grid:
            xt, y = torch.as_tensor(x[:r]), torch.zeros(r, dtype=torch.long)

            def call(xt=xt, y=y, grad=grad):
                if grad:
                    xg = xt.clone().requires_grad_(True)
                    torch.autograd.grad(system.folded_logits(xg, y).sum(), xg)
                else:
                    with torch.no_grad():
                        system.folded_logits(xt, y)

            secs.append(best(call, repeats))
        out[grad] = (np.array(grid, float), np.array(secs))
    return out


def floor_seconds(calls: list[tuple[int, bool]], costs: dict[bool, tuple[np.ndarray, np.ndarray]]) -> float:
    """The floor of a list of network calls ``(rows, with input gradient)``: each at the measured cost of one call of
    the system on that many rows (forward, or forward + input-only backward)."""
    return float(sum(np.interp(r, *costs[g]) for r, g in calls))


def measure(attacks, det, x, y, costs, repeats: int = 1) -> dict:
    """Broken inputs, counts and floor of one run; the wall time is the best of ``repeats`` identical runs."""
    walls = []
    for _ in range(repeats):
        calls: list[list] = []
        with count_network_passes(det.model, calls) as c:
            t = time.perf_counter()
            r = WorstCaseEnsemble(attacks, batch_size=len(x)).run(det, x, y, fpr=0.05)
            walls.append(time.perf_counter() - t)
    return {"broken": int(r.broken.sum()), "wall": min(walls), "floor": floor_seconds([tuple(e) for e in calls], costs),
            **c}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="attacked inputs")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=5, help="best of, for the unit costs")
    p.add_argument("--wall-repeats", type=int, default=2, help="best of, for each member's and ensemble's wall time")
    p.add_argument("--shapes", default="8,28", help="image sides to run (8: digits, 28: Fashion-MNIST)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST's IDX files for the 28x28 run (else seeded "
                   "synthetic images, on which a weak network breaks at once: pass a smaller --eps)")
    p.add_argument("--n-train", type=int, default=10_000, help="training images of the 28x28 network")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"settings: n={args.n} eps={args.eps} fpr=0.05 K-density, standard 0.7={STANDARD_ENSEMBLE} 0.6={LEGACY} "
          f"(default budgets), unit costs best of {args.repeats}, wall times best of {args.wall_repeats}, "
          f"torch threads={torch.get_num_threads()}")
    ok = True
    for side in (int(s) for s in args.shapes.split(",")):
        real = "Fashion-MNIST" if args.data_dir else "Fashion-MNIST-shaped synthetic"
        label, shape = ("digits 8x8", (1, 8, 8)) if side == 8 else (f"{real} {side}x{side}", (1, side, side))
        det, x, y = setup(shape, 2000 if side == 8 else args.n_train, 0, None if side == 8 else args.data_dir)
        x, y = x[: args.n], y[: args.n]
        costs = unit_costs(det, x, args.repeats)
        xt = torch.as_tensor(x)

        def fb_detector(xt=xt, det=det):
            xg = xt.clone().requires_grad_(True)
            logits, score = det.logits_and_score(xg)
            torch.autograd.grad(logits.sum() + score.sum(), xg)

        det.model.eval()
        wrapper = costs[True][1][-1] / best(fb_detector, args.repeats)
        ok &= wrapper <= 1.1
        print(f"\n{label}: one call on {len(x)} rows: forward {1e3 * costs[False][1][-1]:.2f} ms, forward + input-only "
              f"backward {1e3 * costs[True][1][-1]:.2f} ms; on 1 row: {1e3 * costs[False][1][0]:.2f} / "
              f"{1e3 * costs[True][1][0]:.2f} ms; wrapper overhead (system vs the detector's own score, forward + "
              f"backward) {wrapper:.2f}x (target <= 1.1x)")
        print(f"{'':30s} {'broken':>7s} {'wall s':>8s} {'floor s':>8s} {'wall/floor':>10s} {'fwd rows/in':>11s} "
              f"{'bwd rows/in':>11s} {'calls/100 in':>12s}")
        measure([build_adaptive_attack(a, args.eps) for a in STANDARD_ENSEMBLE], det, x[:20], y[:20], costs)  # warm-up
        walls, floors = {}, {}
        for version, names in (("0.7", STANDARD_ENSEMBLE), ("0.6", LEGACY)):
            rows = [(f"{version} {n} alone", [n], i) for i, n in enumerate(names)]
            rows.append((f"{version} standard ensemble", list(names), len(names)))
            for name, members, slot in rows:
                m = measure([build_adaptive_attack(a, args.eps) for a in members], det, x, y, costs, args.wall_repeats)
                if version == "0.7":
                    floors[slot] = m["floor"]  # the algorithm's passes: 0.6's members run the same algorithms
                ratio = m["wall"] / floors[slot]
                calls = 100 * (m["forward_calls"] + m["backward_calls"]) / len(x)
                target = ""
                if version == "0.7" and name.endswith("alone"):
                    ok &= ratio <= 1.3
                    target = "  (target <= 1.3x)"
                print(f"{name:30s} {m['broken']:7d} {m['wall']:8.2f} {floors[slot]:8.2f} {ratio:9.2f}x "
                      f"{m['forward'] / len(x):11.1f} {m['backward'] / len(x):11.1f} {calls:12.0f}{target}")
                if "ensemble" in name:
                    walls[version] = m
        new, old = walls["0.7"], walls["0.6"]
        lo, _ = wilson_interval(old["broken"], len(x))
        strong = new["broken"] >= np.floor(lo * len(x))
        speed = old["wall"] / new["wall"]
        ok &= speed >= 5 and strong
        print(f"0.7's ensemble vs 0.6's: {speed:.1f}x faster (target >= 5x), network calls "
              f"{old['forward_calls'] + old['backward_calls']} -> {new['forward_calls'] + new['backward_calls']}, "
              f"broken {old['broken']} -> {new['broken']} (as strong within the interval: {strong})")
    print(f"\nall targets met: {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
