"""RAND: uniform noise examples (Pang et al. 2018, Appendix B.3)."""

from __future__ import annotations

from typing import Any

import torch

from rce_art._signature import SignatureParams
from rce_art._tensors import as_input_tensor, like
from rce_art._validation import check_integer, check_positive

__all__ = ["UniformNoise"]


class UniformNoise(SignatureParams):
    """``x* = clip(x + U(-eps, eps))``, element-wise (the paper's RAND, Appendix B.3).

    Args:
        eps: Half-width of the uniform noise (paper: 0.04 on CIFAR-10 in [-0.5, 0.5]).
        clip_values: ``(min, max)`` pixel range.
        seed: Seed of the noise; each call of [`generate`][] restarts from it.
    """

    def __init__(self, eps: float, clip_values: tuple[float, float], seed: int = 0) -> None:
        self.eps = check_positive(eps, "eps")
        self.clip_values = (float(clip_values[0]), float(clip_values[1]))
        self.seed = check_integer(seed, "seed", 0)

    def generate(self, x: Any, y: Any = None) -> Any:
        """Noisy copies of ``x`` with its type, shape, dtype and device (``y`` is ignored)."""
        xt = as_input_tensor(x, torch.device("cpu"), self.clip_values)
        g = torch.Generator().manual_seed(self.seed)
        noise = (torch.rand(xt.shape, generator=g) * 2.0 - 1.0) * self.eps
        return like(xt + noise, x, self.clip_values)
