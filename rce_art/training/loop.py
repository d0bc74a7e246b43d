"""One plain torch training loop, used by every trainer (works without ART)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from rce_art._validation import check_inputs, deprecated_progress
from rce_art.distributed import broadcast_module, get_rank, get_world_size, is_distributed, is_main_process, rank_seed

__all__ = ["SCHEDULES", "TrainHistory", "cosine_lr", "piecewise_lr", "train_model"]

SCHEDULES = ("piecewise", "cosine")

LossFn = Callable[[Tensor, Tensor], Tensor]


def piecewise_lr(step: int, total_steps: int, milestones: Sequence[float], gamma: float) -> float:
    """Multiplier of the base learning rate at ``step``: ``gamma ** (milestones passed)``.

    ``milestones`` are fractions of training. The paper's MNIST schedule (steps 10k/15k
    of 20k, learning rate 0.1 -> 0.01 -> 0.001) is ``milestones=(0.5, 0.75)``, ``gamma=0.1``
    (Pang et al. 2018, Appendix B.1).
    """
    frac = step / max(total_steps, 1)
    return float(gamma ** sum(frac >= m for m in milestones))


def cosine_lr(step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` under cosine annealing to 0 (Loshchilov & Hutter 2017).

    ``0.5 * (1 + cos(pi * step / total_steps))``, per optimisation step, as torch's ``CosineAnnealingLR``
    with ``T_max = total_steps`` and ``eta_min = 0`` (Lemesle & Vernade, Table 1).
    """
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


@dataclass
class TrainHistory:
    """Per-epoch mean training loss, learning rate and (when a validation set is given) validation accuracy."""

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


class _ArrayBatches:
    """Shuffled mini-batches of in-memory ``(x, y)``, each process taking its share of every global batch.

    Epoch ``e`` draws one permutation from a generator seeded with ``seed + e`` (the permutation torch's
    ``DistributedSampler`` draws) and cuts it into global batches of ``batch_size`` (the last one smaller); process
    ``r`` of ``W`` takes rows ``r, r + W, ...`` of each. Every example is visited exactly once per epoch, with no
    padding by duplicates, whatever ``N`` and ``W``. Each batch comes with the weight that makes the average of
    the processes' gradients (DDP's all-reduce) the gradient of the mean loss over the whole global batch:
    ``W * n_r / n``. A process whose share of the last batch is empty gets one row with weight 0 (DDP needs every
    process in every backward pass).
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, seed: int) -> None:
        self.x, self.y, self.batch_size, self.seed, self.epoch = x, y, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.x.shape[0] / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, float]]:
        # a DataLoader draws a base seed from the global stream when an epoch starts; drawing it too keeps the
        # model's own random stream (dropout masks) that of 0.3, so single-process training is unchanged
        torch.empty((), dtype=torch.int64).random_()
        perm = torch.randperm(self.x.shape[0], generator=torch.Generator().manual_seed(self.seed + self.epoch))
        world, rank = get_world_size(), get_rank()
        for i in range(0, perm.numel(), self.batch_size):
            batch = perm[i : i + self.batch_size]
            share = batch[rank::world]
            if share.numel() == 0:
                yield self.x[batch[:1]], self.y[batch[:1]], 0.0
            else:
                yield self.x[share], self.y[share], world * share.numel() / batch.numel()


def _as_loader(data: Any, batch_size: int, seed: int) -> Iterable:
    """A loader over ``data``: arrays are shuffled per epoch (seed + epoch) and sharded across processes.

    ``batch_size`` is the global batch: each of ``W`` processes takes its share of the same per-epoch
    permutation's batch ([`_ArrayBatches`][]), so the union of the processes' k-th batches is the
    single-process run's k-th batch and every example is visited once per epoch.
    """
    if isinstance(data, DataLoader) or (hasattr(data, "__iter__") and hasattr(data, "sampler")):
        return data  # a DataLoader, or a wrapper of one exposing its sampler
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
        check_inputs(x, name="x")
        xt = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float32)
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y).long()
        if yt.ndim != 1 or yt.shape[0] != xt.shape[0]:
            raise ValueError(f"y must have shape ({xt.shape[0]},), got {tuple(yt.shape)}")
        return _ArrayBatches(xt, yt, batch_size, seed)
    raise TypeError("data must be a (x, y) pair of arrays/tensors or a torch DataLoader")


def train_model(
    model: nn.Module,
    data: Any,
    loss_fn: LossFn,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 2e-4,
    milestones: Sequence[float] = (0.5, 0.75),
    gamma: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = None,
    verbose: bool = True,
    batch_loss: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None,
    schedule: str = "piecewise",
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    post_step: Callable[[], None] | None = None,
    optimizer: Any = None,
    epoch_end: Callable[[TrainHistory], None] | None = None,
    progress: bool | None = None,
) -> TrainHistory:
    """Train ``model`` in place with SGD + momentum, weight decay and a piecewise schedule.

    Args:
        model: Module mapping inputs to the logits that ``loss_fn`` expects.
        data: ``(x, y)`` arrays/tensors (shuffled with ``seed``) or a ``DataLoader``
            yielding ``(x, y)`` batches.
        loss_fn: ``loss_fn(logits, y) -> scalar`` (e.g. ``reverse_cross_entropy``).
        epochs: Passes over the data.
        batch_size: Mini-batch size (ignored for a ``DataLoader``).
        lr: Base learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        milestones: Fractions of training where the learning rate is multiplied by ``gamma``.
        gamma: Decay factor.
        seed: Seeds shuffling and any randomness in the model (global RNG state is restored after).
        device: Device to train on (default: the model's).
        verbose: Show a tqdm progress bar (rank 0 only under torchrun).
        batch_loss: ``batch_loss(model, x, y) -> scalar`` replacing ``loss_fn(model(x), y)``, for
            objectives that need more than one forward pass per batch (e.g. PDM's Siamese partners).
        schedule: ``"piecewise"`` (``milestones``/``gamma``, Pang et al.) or ``"cosine"`` (annealing to 0
            over all steps, Lemesle & Vernade; ``milestones`` and ``gamma`` are then unused).
        augment: ``augment(x, generator) -> x`` applied to every training batch (e.g.
            `rce_art.data.augment.random_crop_flip`); its generator is seeded from ``seed``.
        post_step: Called after every optimiser step (e.g. ER-Classifier's encoder step, Algorithm 1 line 9).
        optimizer: ``None`` (SGD with ``lr``, ``momentum``, ``weight_decay``), a factory called with the model's
            parameters (e.g. ``functools.partial(torch.optim.Adam, lr=1e-3)``), or an optimizer over them (e.g.
            the ART classifier's own). The learning-rate schedule multiplies its learning rate.
        epoch_end: Called with the history after every epoch (e.g. to record a validation accuracy).
        progress: Deprecated name of ``verbose`` (0.3).

    Distributed training: under ``torchrun`` (a process group of more than one process, see
    [`rce_art.distributed.init_distributed`][rce_art.distributed.init_distributed]) the model is wrapped in ``DistributedDataParallel``;
    ``batch_size`` stays the *global* batch (each of ``W`` processes takes every ``W``-th example of the same
    per-epoch permutation's batch, with no padding: every example is visited exactly once per epoch, for any
    ``N``), so the number of steps and the learning-rate schedule are those of a single-process run, the k-th
    global batch holds the same examples, and each process's loss is weighted by its share of the batch so that
    the averaged gradient is the single-process gradient of the mean loss. Only rank 0 shows progress;
    ``history`` holds the global mean loss; at the end rank 0's buffers (BatchNorm statistics) are copied
    to every rank, so all ranks hold the same model. Batch-level statistics (BatchNorm in training mode,
    OVM's class means, PDM's reduce-variance term) are computed over each process's share of the batch.
    A ``DataLoader`` passed in must shard itself (``DistributedSampler``); its ``set_epoch`` is called.

    Returns:
        [`TrainHistory`][]. The model is left in eval mode.

    Raises:
        ValueError: If ``epochs`` or ``batch_size`` < 1, on an unknown schedule, or on invalid data.
        FloatingPointError: If the loss becomes NaN or infinite (lower ``lr``).
    """
    verbose = deprecated_progress(progress, verbose)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    param = next(model.parameters(), None)
    if param is None:
        raise ValueError("model has no parameters to train")
    dev = torch.device(device) if device is not None else param.device
    model.to(dev)
    loader = _as_loader(data, batch_size, seed)
    sampler: Any = loader if hasattr(loader, "set_epoch") else getattr(loader, "sampler", None)
    distributed = is_distributed()
    net: nn.Module = model
    if distributed:
        net = DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    total = epochs * len(loader)  # type: ignore[arg-type]
    opt: torch.optim.Optimizer
    if optimizer is None:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif isinstance(optimizer, torch.optim.Optimizer):
        opt = optimizer
    elif callable(optimizer):
        opt = optimizer(model.parameters())
    else:
        raise TypeError(f"optimizer must be None, a torch optimizer or a factory of one, got "
                        f"{type(optimizer).__name__}")
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: cosine_lr(s, total) if schedule == "cosine" else piecewise_lr(s, total, milestones, gamma))
    aug_gen = torch.Generator().manual_seed(rank_seed(seed + 1))
    history = TrainHistory()
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(rank_seed(seed))  # dropout etc.: one stream per process
        model.train()
        bar = tqdm(range(epochs), desc="train", disable=not (verbose and is_main_process()), leave=False)
        for epoch in bar:
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)  # reshuffle every epoch, the same permutation on every process
            running, n = 0.0, 0
            history.lr.append(opt.param_groups[0]["lr"])
            for batch in loader:
                xb, yb = batch[0].to(dev), batch[1].to(dev)
                weight = float(batch[2]) if len(batch) > 2 else 1.0  # this process's share of the global batch
                if augment is not None:
                    xb = augment(xb, aug_gen)
                loss = batch_loss(net, xb, yb) if batch_loss is not None else loss_fn(net(xb), yb)
                n_b = loss.new_tensor(xb.shape[0] if weight > 0 else 0, dtype=torch.float64)
                stat = torch.stack([loss.detach().double() * n_b, n_b])
                if weight != 1.0:
                    loss = loss * weight
                if distributed:  # global loss: every process stops together on a non-finite one
                    dist.all_reduce(stat)
                if not torch.isfinite(stat[0]):
                    raise FloatingPointError(f"training loss became {stat[0].item()}; lower the learning rate")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if post_step is not None:
                    post_step()
                running += stat[0].item()
                n += stat[1].item()
            history.loss.append(running / max(n, 1))
            if epoch_end is not None:
                epoch_end(history)
                model.train()
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
    broadcast_module(model)  # BatchNorm buffers: rank 0's everywhere (parameters already agree)
    model.eval()
    return history
