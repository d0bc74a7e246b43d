"""Tensor conversion, model-mode and prediction helpers shared across layers (private module)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rce_art._validation import check_inputs, check_reduction

__all__ = [
    "as_input_tensor",
    "as_label_tensor",
    "eval_mode",
    "frozen_buffers",
    "least_likely_labels",
    "like",
    "predicted_labels",
    "reduce_loss",
]


def as_input_tensor(x: Any, device: torch.device, clip_values: tuple[float, float] | None) -> Tensor:
    """Validate ``x`` and return a detached float32 copy on ``device`` (the caller's array is never touched)."""
    check_inputs(x, name="x", clip_values=clip_values)
    t = x.detach() if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))
    return t.to(device=device, dtype=torch.float32).clone()


def as_label_tensor(y: Any, n: int, device: torch.device) -> Tensor | None:
    """Labels as an int64 tensor of shape ``(n,)`` (one-hot rows are reduced with argmax), or ``None``."""
    if y is None:
        return None
    t = y.detach() if isinstance(y, Tensor) else torch.as_tensor(np.asarray(y))
    if t.ndim == 2:
        t = t.argmax(1)
    if t.shape != (n,):
        raise ValueError(f"y must have shape ({n},) or ({n}, nb_classes), got {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.long)


def like(x_adv: Tensor | np.ndarray, x: Any, clip_values: tuple[float, float] | None) -> Any:
    """Clip ``x_adv`` to ``clip_values`` and return it with the type, dtype and device of ``x``."""
    t = torch.as_tensor(x_adv).detach()
    if clip_values is not None:
        t = t.clamp(clip_values[0], clip_values[1])
    if isinstance(x, Tensor):
        return t.to(device=x.device, dtype=x.dtype).reshape(x.shape)
    return t.cpu().numpy().astype(np.asarray(x).dtype, copy=False).reshape(np.shape(x))


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Run the block with ``models`` in eval mode; restore the train/eval mode of every submodule after.

    Attacks and evaluations must not use batch statistics or update BatchNorm running statistics,
    whatever mode the caller left the model in.
    """
    modes = [(m, m.training) for model in models for m in model.modules()]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


@contextmanager
def frozen_buffers(model: nn.Module) -> Iterator[None]:
    """Run the block with ``model``'s buffers (BatchNorm running statistics, counters) restored after.

    For a second forward pass in train mode over a batch whose statistics were already counted: the pass uses
    batch statistics, as the first one did, without updating the running estimates twice.
    """
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)


def predicted_labels(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Argmax predictions of ``model`` on ``x`` (no grad, in eval mode)."""
    with torch.no_grad(), eval_mode(model):
        return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)])


def least_likely_labels(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Argmin predictions (the least-likely class, ILCM's target), in eval mode."""
    with torch.no_grad(), eval_mode(model):
        return torch.cat([model(x[i : i + batch_size]).argmin(1) for i in range(0, x.shape[0], batch_size)])


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """Per-example losses ``(N,)`` reduced as torch's losses do: ``"mean"``, ``"sum"`` or ``"none"``."""
    check_reduction(reduction)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss
