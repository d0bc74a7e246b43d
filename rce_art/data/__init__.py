"""Datasets: scikit-learn digits (default, embedded), MNIST, Fashion-MNIST, CIFAR-10."""

from rce_art.data.datasets import DATASETS, Dataset, load_dataset
from rce_art.data.idx import read_cifar10_batch, read_idx

__all__ = ["DATASETS", "Dataset", "load_dataset", "read_cifar10_batch", "read_idx"]
