"""Cost of an OVM (and a label smoothing + logit squeezing) training epoch relative to a CE epoch.

The regularisers of Lemesle & Vernade work on the logits of the batch the model already produced, so
they should add almost nothing to a step: the target is an OVM epoch <= 1.1x a CE epoch of the same
model. Epochs alternate (CE, OVM, grid, CE, ...) and the best time of each is kept.

    python benchmarks/objective_epoch.py
"""

from __future__ import annotations

import time

import torch
from _synthetic import epoch_parser, images_28x28

import rce_art as ra

OBJECTIVES = {
    "CE": ra.losses.ComposedObjective(),
    "OVM (lambda 1)": ra.losses.ComposedObjective(output_variance=1.0),
    "LS 0.4 + squeeze 0.4": ra.losses.ComposedObjective(rce_smoothing=0.4, logit_squeezing=0.4),
}


def epoch_time(objective, x, y, seed: int) -> float:
    torch.manual_seed(seed)
    net = ra.SmallCNN(x.shape[1], 10, width=16)
    trainer = ra.ObjectiveTrainer(net, objective, clip_values=(-0.5, 0.5), epochs=1, batch_size=128, lr=0.05,
                                  verbose=False, seed=seed)
    t = time.perf_counter()
    trainer.fit(x, y)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    args = epoch_parser(__doc__, 6000).parse_args(argv)
    x, y = images_28x28(args.n, args.seed)
    times: dict[str, list[float]] = {k: [] for k in OBJECTIVES}
    for _ in range(args.repeats):
        for name, obj in OBJECTIVES.items():
            times[name].append(epoch_time(obj, x, y, args.seed))
    print(f"settings: {args.n} inputs 28x28, SmallCNN width 16, batch 128, best of {args.repeats}, "
          f"torch threads={torch.get_num_threads()}")
    ce = min(times["CE"])
    for name, ts in times.items():
        print(f"{name:22s} epoch {min(ts):.2f}s  ratio to CE {min(ts) / ce:.3f}")
    ratio = min(times["OVM (lambda 1)"]) / ce
    print(f"OVM / CE = {ratio:.3f} (target <= 1.1): {'met' if ratio <= 1.1 else 'MISSED'}")
    return 0 if ratio <= 1.1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
