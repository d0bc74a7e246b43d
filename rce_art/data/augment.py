"""Batch data augmentation on tensors, driven by a ``torch.Generator`` (never the global RNG)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["AUGMENTATIONS", "random_crop_flip"]

AUGMENTATIONS = ("crop", "crop-flip", "flip")
"""Names the trainers accept for ``augment=``: random crop after padding, and/or random horizontal flip."""


def random_crop_flip(
    x: Tensor,
    padding: int = 4,
    flip: bool = True,
    crop: bool = True,
    fill: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random crop after constant padding and random horizontal flip of an image batch (CIFAR-10 standard).

    Each image is padded by ``padding`` pixels of value ``fill`` on every side and cropped back to its
    size at a uniformly drawn offset; with ``flip`` each image is mirrored left-right with probability 1/2.
    The operations are vectorised over the batch.

    Args:
        x: Images ``(N, C, H, W)``.
        padding: Pixels of padding per side (``>= 0``; 4 for CIFAR-10).
        flip: Apply random horizontal flips.
        crop: Apply random crops.
        fill: Value of the padding (the black level of the pixel range, e.g. ``-0.5`` in ``[-0.5, 0.5]``).
        generator: Source of randomness, on the CPU (default: a fresh unseeded one).

    Returns:
        Augmented images, same shape, dtype and device as ``x``.

    Raises:
        ValueError: If ``x`` is not 4-D or ``padding < 0``.
    """
    if x.ndim != 4:
        raise ValueError(f"augmentation needs images of shape (N, C, H, W), got {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    gen = generator if generator is not None else torch.Generator()
    n, _, h, w = x.shape
    if crop and padding:
        xp = F.pad(x, (padding,) * 4, value=fill)
        oy = torch.randint(0, 2 * padding + 1, (n,), generator=gen).to(x.device)
        ox = torch.randint(0, 2 * padding + 1, (n,), generator=gen).to(x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]
        x = xp[torch.arange(n, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()
    if flip:
        mirror = (torch.rand(n, generator=gen) < 0.5).to(x.device)
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
    return x
