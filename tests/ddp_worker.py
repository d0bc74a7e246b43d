"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=2`` (gloo, CPU).

Writes to ``--out``: ``model-rank{r}.pt`` (weights after DDP training, per rank), and from rank 0
``result.json`` with the checks that need a live process group.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

import rce_art as ra
from rce_art.adapters import build_attack
from rce_art.distributed import all_gather_concat, get_rank, get_world_size, init_distributed


def tiny_net() -> nn.Module:
    """No BatchNorm: 2-process and 1-process training agree up to float reduction order."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))


def flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([t.detach().flatten() for t in [*module.parameters(), *module.buffers()]])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    init_distributed("gloo")
    rank, world = get_rank(), get_world_size()
    data = ra.load_dataset("digits", pixel_range="paper", seed=0)
    x, y = data.x_train[:251], data.y_train[:251]  # uneven: the last global batch splits 30 / 29
    result: dict = {"world_size": world}

    # 1. CE training under DDP, global batch 64 (32 per process; 30 and 29 in the last batch)
    torch.manual_seed(0)
    net = tiny_net()
    trainer = ra.CETrainer(net, clip_values=data.clip_values, epochs=2, batch_size=64, seed=0, verbose=False)
    trainer.fit(x, y)
    torch.save(net.state_dict(), args.out / f"model-rank{rank}.pt")
    flats = all_gather_concat(flat(net)[None])
    result["same_model_on_every_rank"] = bool(all(torch.equal(flats[0], f) for f in flats))
    result["history_loss"] = trainer.history_.loss

    # 2. BatchNorm model, PDM (its loss goes through DDP's forward) and ER-Classifier (critic and encoder steps
    #    outside DDP, gradients averaged by hand): ranks still agree
    er_kw = {"critic_hidden": 16, "pgd_eps": 0.1, "pgd_alpha": 0.05, "pgd_steps": 2}
    for name, make in (("small_cnn_ce", lambda c: ra.CETrainer(c, epochs=1, batch_size=64, verbose=False)),
                       ("pdm", lambda c: ra.PDMTrainer(c, epochs=1, batch_size=64, verbose=False)),
                       ("er", lambda c: ra.ERTrainer(c, epochs=1, batch_size=64, verbose=False, **er_kw))):
        torch.manual_seed(1)
        cnn = ra.ERClassifier.small(1, 10, k=8, width=8) if name == "er" else ra.SmallCNN(1, 10, width=8)
        make(ra.make_art_classifier(cnn, data.input_shape, 10, data.clip_values)).fit(x, y)
        flats = all_gather_concat(flat(cnn)[None])
        result[f"{name}_same_on_every_rank"] = bool(all(torch.equal(flats[0], f) for f in flats))

    # 3. K-density fit gathers features across ranks; the bank equals a single-process extraction
    clf = trainer.get_classifier()
    det = ra.KDensityDetector(clf, batch_size=32, seed=0).fit(x, y)
    logits_g, feats_g = det.extract_gathered(data.x_test[:100], 32)
    logits_1, feats_1 = det.extract(data.x_test[:100], 32)
    result["gathered_features_equal"] = bool(torch.equal(feats_g, feats_1) and torch.equal(logits_g, logits_1))
    bws = all_gather_concat(np.array([det.bandwidth_]))
    result["same_bandwidth_on_every_rank"] = bool(np.all(bws == bws[0]))

    # 4. sharded evaluation of a deterministic attack == the single-process report
    xs, ys = data.x_test[:100], data.y_test[:100]
    attack = build_attack("bim", clf, "art", eps=0.2, batch_size=16)
    gathered = ra.evaluation.sharded_example_scores(attack.generate, {"kd": det}, xs, ys, data.clip_values, block=16)["kd"]
    whole = ra.evaluation.example_scores(det, xs, attack.generate(xs), ys, data.clip_values)
    result["sharded_scores_equal"] = all(np.array_equal(gathered[k], whole[k]) for k in whole)
    result["sharded_report_equal"] = ra.evaluation.report_from_scores(gathered) == ra.evaluation.report_from_scores(whole)
    if rank == 0:
        (args.out / "result.json").write_text(json.dumps(result))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
