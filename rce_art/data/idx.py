"""Readers for the original MNIST-family IDX files and CIFAR-10 python batches."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

__all__ = ["read_cifar10_batch", "read_idx"]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``*-ubyte`` or ``*-ubyte.gz``) into a numpy array.

    Raises:
        ValueError: If the header is not a valid IDX header or the payload is truncated.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims))
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=4 + 4 * ndim) if len(raw) >= 4 + 4 * ndim + count * dtype.itemsize else None
    if data is None:
        raise ValueError(f"{path} is truncated: header says {dims}")
    return data.reshape(dims)


def read_cifar10_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)``.

    The official CIFAR-10 python batches are pickles; only open files you obtained from
    the dataset's official source (torchvision reads them the same way).
    """
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    return np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(d["labels"], dtype=np.int64)
