"""Speed-up of 2 torchrun processes over 1 process on the same total work, on this machine's cores.

Two workloads, each timed inside the workers between barriers: one training epoch of a SmallCNN on
N 28x28 inputs at a global batch of 128 (DistributedDataParallel, gloo), and BIM (10 steps) on M
inputs sharded by example (``rce_art.evaluation.sharded_example_scores``). The single process gets every core as
threads (``--threads-total``); each of the 2 processes gets half, so both sides use the same cores.
Ratios are ``time(1 process) / time(2 processes)`` (> 1: the 2 processes are faster).

    python benchmarks/distributed.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def worker(args: argparse.Namespace) -> None:
    import rce_art as ra
    from rce_art.adapters import build_attack
    from rce_art.distributed import barrier, get_world_size, init_distributed, is_main_process

    init_distributed("gloo")
    torch.set_num_threads(max(1, args.threads_total // get_world_size()))
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, size=(args.n_train, 1, 28, 28)).astype(np.float32)
    y = np.arange(args.n_train) % 10
    torch.manual_seed(0)
    net = ra.SmallCNN(1, 10, width=16)
    trainer = ra.CETrainer(net, clip_values=(-0.5, 0.5), epochs=1, batch_size=128, lr=0.05, verbose=False)
    barrier()
    t = time.perf_counter()
    trainer.fit(x, y)
    barrier()
    train_s = time.perf_counter() - t
    clf = trainer.get_classifier()
    det = ra.KDensityDetector(clf, bandwidth=1.0).fit(x[:2000], y[:2000])
    attack = build_attack("bim", clf, "art", eps=0.1, batch_size=64)
    barrier()
    t = time.perf_counter()
    ra.evaluation.sharded_example_scores(attack.generate, {"kd": det}, x[: args.n_attack], y[: args.n_attack], (-0.5, 0.5), block=64)
    barrier()
    attack_s = time.perf_counter() - t
    if is_main_process():
        Path(args.result).write_text(json.dumps({"train_s": train_s, "attack_s": attack_s}))


def launch(nproc: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "r.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, args.threads_total // nproc))}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               __file__, "--worker", "--result", str(result), "--n-train", str(args.n_train), "--n-attack", str(args.n_attack),
               "--threads-total", str(args.threads_total)]  # no option may abbreviate one of torchrun's
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        return json.loads(result.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=6144, help="training inputs (one epoch)")
    p.add_argument("--n-attack", type=int, default=512, help="inputs attacked")
    p.add_argument("--threads-total", type=int, default=os.cpu_count() or 2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    runs = {1: [], 2: []}
    for _ in range(args.repeats):  # alternate 1 and 2 processes; keep the best of each
        for nproc in (1, 2):
            runs[nproc].append(launch(nproc, args))
    best = {k: {m: min(r[m] for r in v) for m in ("train_s", "attack_s")} for k, v in runs.items()}
    print(f"settings: {args.n_train} training inputs 28x28 (1 epoch, SmallCNN width 16, global batch 128), BIM on {args.n_attack} "
          f"inputs, {args.threads_total} threads in all, gloo, best of {args.repeats}")
    for m, label in (("train_s", "training epoch"), ("attack_s", "sharded BIM evaluation")):
        print(f"{label:24s} 1 process {best[1][m]:.2f}s, 2 processes {best[2][m]:.2f}s -> speed-up "
              f"{best[1][m] / best[2][m]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
