"""Cost of an ER-Classifier training epoch relative to a Madry PGD-training epoch, same PGD settings and model.

ER-Classifier adds a critic step and an encoder step to each PGD-training step; both work on k-dimensional
codes, so beside the PGD steps they should be cheap: target ER epoch <= 1.15x a Madry epoch. The Madry epoch
is measured twice: on the same loop (``ERTrainer(regularizer=None)``, identical PGD) and with ART's
``AdversarialTrainerMadryPGD`` (the baseline the scripts use). Epochs alternate; the best of each is kept.

    python benchmarks/er_epoch.py
"""

from __future__ import annotations

import time

import torch
from _synthetic import epoch_parser, images_28x28

import rce_art as ra

PGD = {"eps": 0.3, "alpha": 0.075, "steps": 7}


def er_epoch(x, y, seed: int, regularizer) -> float:
    torch.manual_seed(seed)
    net = ra.ERClassifier.small(1, 10, k=32, width=16)
    trainer = ra.ERTrainer(net, clip_values=(-0.5, 0.5), regularizer=regularizer, pgd_eps=PGD["eps"],
                           pgd_alpha=PGD["alpha"], pgd_steps=PGD["steps"], epochs=1, batch_size=128, lr=0.05,
                           verbose=False, seed=seed)
    t = time.perf_counter()
    trainer.fit(x, y)
    return time.perf_counter() - t


def art_madry_epoch(x, y, seed: int) -> float:
    from art.defences.trainer import AdversarialTrainerMadryPGD

    torch.manual_seed(seed)
    net = ra.ERClassifier.small(1, 10, k=32, width=16)
    clf = ra.make_art_classifier(net, x.shape[1:], 10, (-0.5, 0.5),
                                 optimizer=torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9))
    trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=1, batch_size=128, eps=PGD["eps"], eps_step=PGD["alpha"],
                                         max_iter=PGD["steps"], num_random_init=1)
    t = time.perf_counter()
    trainer.fit(x, y)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    args = epoch_parser(__doc__, 2048).parse_args(argv)
    x, y = images_28x28(args.n, args.seed)
    times: dict[str, list[float]] = {"ER-Classifier": [], "Madry (same loop)": [], "Madry (ART)": []}
    for _ in range(args.repeats):
        times["ER-Classifier"].append(er_epoch(x, y, args.seed, "critic"))
        times["Madry (same loop)"].append(er_epoch(x, y, args.seed, None))
        times["Madry (ART)"].append(art_madry_epoch(x, y, args.seed))
    best = {k: min(v) for k, v in times.items()}
    print(f"settings: {args.n} inputs 28x28, ERClassifier.small (width 16, k 32), batch 128, PGD {PGD}, best of "
          f"{args.repeats}, torch threads={torch.get_num_threads()}")
    for k, v in best.items():
        print(f"{k:18s} epoch {v:.2f}s")
    ok = True
    for base in ("Madry (same loop)", "Madry (ART)"):
        r = best["ER-Classifier"] / best[base]
        ok &= r <= 1.15
        print(f"ER-Classifier / {base} = {r:.3f} (target <= 1.15): {'met' if r <= 1.15 else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
