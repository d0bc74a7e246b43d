"""Cost of a PDM training epoch relative to a CE epoch of the same model, measured side by side.

PDM draws a Siamese partner for every sample, so each step runs the model on twice the batch;
the target is a PDM epoch <= 2.2x a CE epoch. Epochs alternate (CE, PDM, CE, PDM, ...) and the
best time of each is kept.

    python benchmarks/pdm_epoch.py
"""

from __future__ import annotations

import time

import torch
from _synthetic import epoch_parser, images_28x28

import rce_art as ra


def epoch_time(trainer_cls, x, y, seed: int, **kw) -> float:
    torch.manual_seed(seed)
    net = ra.SmallCNN(x.shape[1], 10, width=kw.pop("width"))
    t = time.perf_counter()
    trainer_cls(net, epochs=1, batch_size=128, lr=0.05, verbose=False, seed=seed, **kw).fit(x, y)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    args = epoch_parser(__doc__, 6000).parse_args(argv)
    x, y = images_28x28(args.n, args.seed)
    ce, pdm = [], []
    for _ in range(args.repeats):
        ce.append(epoch_time(ra.CETrainer, x, y, args.seed, width=16))
        pdm.append(epoch_time(ra.PDMTrainer, x, y, args.seed, width=16))
    ratio = min(pdm) / min(ce)
    print(f"settings: {args.n} inputs 28x28, SmallCNN width 16, batch 128, best of {args.repeats}, "
          f"torch threads={torch.get_num_threads()}")
    print(f"CE epoch {min(ce):.2f}s, PDM epoch {min(pdm):.2f}s -> ratio {ratio:.2f} (target <= 2.2)")
    return 0 if ratio <= 2.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
