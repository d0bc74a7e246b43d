import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

import rce_art as ra
from rce_art.data import read_idx


def test_digits_split_is_fixed_and_in_range():
    a, b = ra.load_dataset("digits"), ra.load_dataset("digits")
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.dtype == np.float32
    assert a.x_train.min() >= -0.5 and a.x_train.max() <= 0.5 and a.clip_values == (-0.5, 0.5)
    u = ra.load_dataset("digits", pixel_range="unit")
    assert u.clip_values == (0.0, 1.0) and u.x_train.min() >= 0 and u.x_train.max() <= 1
    np.testing.assert_allclose(u.x_train - 0.5, a.x_train, atol=1e-6)
    assert sorted(np.unique(a.y_train)) == list(range(10))


def _write_idx(path, arr, gz):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_family_from_idx_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 28, 28))
    labs = rng.integers(0, 10, size=5)
    sfx = ".gz" if gz else ""
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{sfx}", imgs, gz)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{sfx}", labs, gz)
    ds = ra.load_dataset("fashion-mnist", data_dir=tmp_path, pixel_range="unit")
    assert ds.x_train.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(ds.x_train[:, 0] * 255, imgs, atol=1e-3)
    np.testing.assert_array_equal(ds.y_test, labs)
    np.testing.assert_array_equal(read_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}"), labs)


def test_cifar10_from_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {"data": rng.integers(0, 256, size=(2, 3072), dtype=np.uint8), "labels": [1, 2]}
        (folder / name).write_bytes(pickle.dumps(d))
    ds = ra.load_dataset("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (2, 3, 32, 32)
    assert ds.clip_values == (-0.5, 0.5) and ds.x_train.min() >= -0.5


def test_missing_files_name_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*torchvision"):
        ra.load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        ra.load_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        ra.load_dataset("imagenet")


def test_kept_pairs_on_hand_made_case():
    y = np.array([0, 1, 2, 3])
    clean = np.array([0, 1, 0, 3])  # third clean input is wrong
    adv = np.array([1, 1, 1, 0])  # second adversarial input did not fool the model
    np.testing.assert_array_equal(ra.evaluation.kept_pairs(y, clean, adv), [True, False, False, True])


def test_auc_extremes():
    assert ra.evaluation.detection_auc(np.array([5.0, 6, 7]), np.array([1.0, 2])) == 1.0
    assert ra.evaluation.detection_auc(np.ones(4), np.ones(3)) == 0.5
    assert np.isnan(ra.evaluation.detection_auc(np.ones(4), np.ones(0)))


def test_distortion_formula_hand_computed():
    x = np.zeros((1, 1, 2, 2))
    x_adv = np.array([[[[0.5, 0.0], [0.0, 0.0]]]])  # one pixel moved by half the [-0.5, 0.5] range
    # on the [0, 255] scale: one pixel changes by 127.5, d = 4 -> sqrt(127.5^2 / 4) = 63.75
    assert ra.evaluation.distortion(x, x_adv, (-0.5, 0.5))[0] == pytest.approx(63.75)


def test_markdown_table():
    out = ra.evaluation.markdown_table([{"a": 1, "b": 0.12345}, {"a": 2, "b": float("nan")}], ["a", "b"])
    assert out.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.123 |", "| 2 | n/a |"]


def test_confidence_ranking_has_no_float32_ties():
    # margins of 20-40 logits: float32 rounds every confidence to exactly 1.0, the log-odds keep the order
    clean = torch.tensor([[40.0, 0.0, 0.0], [35.0, 0.0, 0.0], [30.0, 0.0, 0.0]])
    adv = torch.tensor([[0.0, 20.0, 0.0], [0.0, 0.0, 22.0]])
    p_clean, p_adv = ra.metrics.confidence(clean).numpy(), ra.metrics.confidence(adv).numpy()
    assert (p_clean == 1.0).all() and (p_adv == 1.0).all() and ra.evaluation.detection_auc(p_clean, p_adv) == 0.5
    lo_clean, lo_adv = ra.metrics.confidence_log_odds(clean).numpy(), ra.metrics.confidence_log_odds(adv).numpy()
    assert ra.evaluation.detection_auc(lo_clean, lo_adv) == 1.0
    z = torch.randn(50, 10, dtype=torch.float64)
    p = ra.metrics.confidence(z)
    torch.testing.assert_close(ra.metrics.confidence_log_odds(z), torch.log(p / (1 - p)))  # it is the log-odds


def test_evaluate_attack_ranks_confidence_by_log_odds(tiny_data):
    # a saturated model: scale the logits so that every confidence is 1.0 in float32
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        net[3].weight.mul_(400.0)
    x, _ = tiny_data
    det = ra.KDensityDetector(net.eval(), bandwidth=1.0)
    pred = det.extract(x)[0].argmax(1).numpy()
    det.fit(x, pred)
    x_adv = np.clip(x + np.random.default_rng(1).uniform(-0.5, 0.5, x.shape), -0.5, 0.5).astype(np.float32)
    rec = ra.evaluation.evaluate_attack(det, x, x_adv, pred, (-0.5, 0.5))
    clean, adv = ra.evaluation.metric_scores(det, x), ra.evaluation.metric_scores(det, x_adv)
    keep = ra.evaluation.kept_pairs(pred, clean["predicted_class"], adv["predicted_class"])
    assert keep.sum() >= 5
    assert rec["auc_confidence"] == ra.evaluation.detection_auc(clean["confidence_log_odds"][keep], adv["confidence_log_odds"][keep])
    assert (clean["confidence"] <= 1).all() and (clean["confidence"] >= 1 / 3).all()  # reported value stays in [0, 1]
