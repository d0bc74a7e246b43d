"""Distributed training and sharded evaluation: 2 gloo processes under torchrun, shards, merges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rce_art as ra
from rce_art.distributed import parse_shard, shard_slice
from rce_art.evaluation import load_shards, save_shard

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------------------------------------ shards
@pytest.mark.parametrize("n,world,block", [(0, 2, 1), (10, 3, 1), (100, 2, 16), (100, 3, 256), (7, 4, 2)])
def test_shard_slices_cover_every_example_once_on_block_boundaries(n, world, block):
    slices = [shard_slice(n, r, world, block) for r in range(world)]
    covered = np.concatenate([np.arange(n)[s] for s in slices])
    assert np.array_equal(covered, np.arange(n))
    assert all(s.start % block == 0 for s in slices if s.start < n)
    blocks = [-(-(s.stop - s.start) // block) for s in slices]
    assert max(blocks) - min(blocks) <= 1  # as even as whole blocks allow


def test_shard_arguments_are_checked():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError, match="i/n with 0 <= i < n"):
            parse_shard(bad)
    with pytest.raises(ValueError, match="0 <= shard < world_size"):
        shard_slice(10, 2, 2)
    assert shard_slice(10) == slice(0, 10)  # one process: everything


def _scores(n, offset=0.0):
    rng = np.random.default_rng(int(offset * 10))
    return {"y": np.arange(n) % 3, "distortion": rng.random(n) + offset, "clean_kdensity": rng.normal(size=n) / 3}


def test_save_and_load_shards_round_trip_exactly(tmp_path):
    a, b = _scores(5), _scores(4, 1.0)
    meta = {"dataset": "digits", "eps": 0.1}
    paths = [save_shard(tmp_path / f"s{i}", {"k": {"scores": s, "info": {"t": i}}}, shard=(i, 2), n=9, meta=meta)
             for i, s in ((1, b), (0, a))]
    for folders in (paths, [tmp_path / "shared"]):
        if folders[0].name == "shared":  # both jobs in one shared folder
            for i, s in ((1, b), (0, a)):
                save_shard(folders[0], {"k": {"scores": s, "info": {"t": i}}}, shard=(i, 2), n=9, meta=meta)
        parts, got_meta = load_shards(folders)
        assert got_meta == meta and parts["k"]["info"] == [{"t": 0}, {"t": 1}]
        for f in a:
            whole = np.concatenate([a[f], b[f]])
            assert np.array_equal(parts["k"]["scores"][f], whole) and parts["k"]["scores"][f].dtype == whole.dtype
    with pytest.raises(ValueError, match=r"need shards 0..1 of 2 exactly once, got \[1\]"):
        load_shards(paths[:1])
    with pytest.raises(ValueError, match="another evaluation"):  # a job of another run: refused, never mixed
        save_shard(tmp_path / "shared", {"k": {"scores": b}}, shard=(1, 2), n=9, meta={"dataset": "mnist"})
    other = save_shard(tmp_path / "o", {"k": {"scores": b}}, shard=(1, 2), n=9, meta={"dataset": "mnist"})
    with pytest.raises(ValueError, match="another evaluation"):
        load_shards([paths[1], other])
    unit = next((paths[0] / "units").glob("*.json"))
    unit.write_text(unit.read_text().replace("0.", "0.9", 1))  # an edited value
    with pytest.raises(ra.evaluation.store.CorruptResultError):
        load_shards(paths)
    (tmp_path / "x.json").write_text("{}")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="not an rce-art shard file"):
        load_shards([tmp_path / "x.json"])  # 0.6's one-file format, still read until 0.8


def test_example_scores_and_report_give_evaluate_attacks_record(ce_trainer, digits):
    det = ra.KDensityDetector(ce_trainer.get_classifier(), seed=0).fit(digits.x_train, digits.y_train)
    x, y = digits.x_test[:60], digits.y_test[:60]
    lo, hi = digits.clip_values
    noise = 0.3 * (hi - lo) * np.sign(np.random.default_rng(0).normal(size=x.shape))
    x_adv = np.clip(x + noise, lo, hi).astype(np.float32)
    whole = ra.evaluation.evaluate_attack(det, x, x_adv, y, digits.clip_values, attack="noise")
    halves = [ra.evaluation.example_scores(det, x[s], x_adv[s], y[s], digits.clip_values) for s in (slice(0, 25), slice(25, 60))]
    merged = {k: np.concatenate([h[k] for h in halves]) for k in halves[0]}
    assert ra.evaluation.report_from_scores(merged, attack="noise") == whole
    empty = ra.evaluation.example_scores(det, x[:0], x_adv[:0], y[:0], digits.clip_values)
    assert set(empty) == set(merged) and all(len(v) == 0 for v in empty.values())


@pytest.mark.parametrize("n,world,batch", [(251, 2, 64), (257, 2, 64), (10, 3, 4), (7, 4, 64)])
def test_distributed_epoch_visits_every_example_exactly_once(monkeypatch, n, world, batch):
    """0.3 padded with duplicates (DistributedSampler): N = 251 on 2 processes saw one example twice."""
    from rce_art.training import loop

    x, y = torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n)
    monkeypatch.setattr(loop, "get_world_size", lambda: world)
    per_rank = []
    for rank in range(world):
        monkeypatch.setattr(loop, "get_rank", lambda rank=rank: rank)
        batches = loop._as_loader((x, y), batch, seed=3)
        batches.set_epoch(2)
        per_rank.append(list(batches))
    seen = torch.cat([yb for shares in per_rank for _, yb, w in shares if w > 0])
    assert sorted(seen.tolist()) == list(range(n))  # once each, no padding
    for k in range(len(per_rank[0])):  # DDP's mean of W * n_r / n weighted losses = the global batch's mean loss
        assert sum(shares[k][2] for shares in per_rank) == pytest.approx(world)
    monkeypatch.setattr(loop, "get_world_size", lambda: 1)
    monkeypatch.setattr(loop, "get_rank", lambda: 0)
    single = loop._as_loader((x, y), batch, seed=3)
    single.set_epoch(2)
    for k, (_, yb, w) in enumerate(single):  # the union of the k-th shares is the single-process k-th batch
        assert w == 1.0
        union = torch.cat([shares[k][1] for shares in per_rank if shares[k][2] > 0])
        assert sorted(union.tolist()) == sorted(yb.tolist())


# ------------------------------------------------------------------------------------- 2 processes, gloo
@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "ddp_worker.py"), "--out", str(out)]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, json.loads((out / "result.json").read_text())


@pytest.mark.slow  # two torchrun processes (~8 s): run by .ci/run's slow step
def test_two_processes_hold_one_model(two_process_run):
    out, result = two_process_run
    assert result["world_size"] == 2
    assert result["same_model_on_every_rank"] and result["small_cnn_ce_same_on_every_rank"]
    assert result["pdm_same_on_every_rank"] and result["er_same_on_every_rank"]
    a, b = (torch.load(out / f"model-rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # two torchrun processes (~8 s): run by .ci/run's slow step
def test_two_process_training_matches_one_process_with_the_same_global_batch(two_process_run, digits):
    out, result = two_process_run
    sys.path.insert(0, str(HERE))
    try:
        from ddp_worker import tiny_net
    finally:
        sys.path.remove(str(HERE))
    torch.manual_seed(0)
    net = tiny_net()
    trainer = ra.CETrainer(net, clip_values=digits.clip_values, epochs=2, batch_size=64, seed=0, verbose=False)
    trainer.fit(digits.x_train[:251], digits.y_train[:251])  # 251: the last global batch splits 30 / 29
    ddp = torch.load(out / "model-rank0.pt", weights_only=True)
    for k, v in net.state_dict().items():  # 8 SGD steps: only the order of float reductions differs
        assert torch.allclose(ddp[k], v, rtol=1e-4, atol=1e-5), k
    assert np.allclose(result["history_loss"], trainer.history_.loss, rtol=1e-4)


@pytest.mark.slow  # two torchrun processes (~8 s): run by .ci/run's slow step
def test_two_process_kdensity_fit_and_sharded_evaluation_equal_single_process(two_process_run):
    _, result = two_process_run
    assert result["gathered_features_equal"] and result["same_bandwidth_on_every_rank"]
    assert result["sharded_scores_equal"] and result["sharded_report_equal"]
