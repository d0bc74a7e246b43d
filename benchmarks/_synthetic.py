"""Shared by the epoch benchmarks: their command line and a seeded synthetic 28x28 training set."""

from __future__ import annotations

import argparse

import numpy as np


def epoch_parser(doc: str | None, n_default: int) -> argparse.ArgumentParser:
    """``--n`` training inputs per epoch, ``--repeats`` (best of), ``--seed``."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=n_default, help="training inputs per epoch (28x28)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    return p


def images_28x28(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform images in ``[-0.5, 0.5]`` of shape ``(1, 28, 28)`` and balanced labels of ten classes."""
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, size=(n, 1, 28, 28)).astype(np.float32)
    return x, np.arange(n) % 10
