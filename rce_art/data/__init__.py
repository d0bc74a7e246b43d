"""Datasets: scikit-learn digits (default, embedded), MNIST, Fashion-MNIST, CIFAR-10."""

from typing import Any

from rce_art._deprecation import moved_attribute
from rce_art.data.datasets import DATASETS, DatasetSplits, load_dataset
from rce_art.data.idx import read_cifar10_batch, read_idx

__all__ = ["DATASETS", "DatasetSplits", "load_dataset", "read_cifar10_batch", "read_idx"]


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, {"Dataset": "rce_art.data:DatasetSplits"})
