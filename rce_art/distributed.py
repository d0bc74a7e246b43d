"""torch.distributed helpers: the process group torchrun sets up, example shards and ordered gathers.

Nothing here schedules work: ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``) starts the processes and [`init_distributed`][] joins them. Every
function is a no-op pass-through in a single process, so library code calls them unconditionally.

Shards are contiguous blocks whose boundaries fall on multiples of ``block`` (the batch size of the work),
so every batch a rank runs is a batch the single-process run would run: deterministic per-batch work
gives bit-identical results once gathered in rank order.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "all_gather_concat",
    "average_gradients",
    "barrier",
    "broadcast_module",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "parse_shard",
    "rank_seed",
    "shard_slice",
]


def is_distributed() -> bool:
    """Whether a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Rank 0: the process that writes files, logs and progress bars."""
    return get_rank() == 0


def rank_seed(seed: int) -> int:
    """``seed`` for rank 0, distinct seeds for the other ranks (``seed + 7919 * rank``): one random stream
    per process for what must differ across processes (dropout, augmentation, random starts, partners)."""
    return int(seed) + 7919 * get_rank()


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def init_distributed(backend: str | None = None) -> torch.device:
    """Join the process group described by torchrun's environment variables, if any.

    Args:
        backend: ``"nccl"``, ``"gloo"``, ...; default ``nccl`` when CUDA is available, else ``gloo``.

    Returns:
        The device this process should use: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.
        Without ``WORLD_SIZE`` in the environment (a plain ``python`` run) nothing is initialised.
    """
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if "WORLD_SIZE" in os.environ and dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return device


def shard_slice(n: int, rank: int | None = None, world_size: int | None = None, block: int = 1) -> slice:
    """The contiguous slice of ``n`` examples that ``rank`` of ``world_size`` processes handles.

    Blocks of ``block`` examples are spread as evenly as possible (earlier ranks take the extra block);
    shards are in rank order and cover ``range(n)`` exactly once.

    Args:
        n: Number of examples (``>= 0``).
        rank: Shard index (default: this process's rank).
        world_size: Number of shards (default: the process count).
        block: Granularity of the boundaries (the work's batch size), ``>= 1``.

    Raises:
        ValueError: If ``rank`` is not in ``[0, world_size)`` or ``block < 1``.
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard {rank} of {world_size} is invalid: need 0 <= shard < world_size")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    blocks = -(-n // block)
    per, extra = divmod(blocks, world_size)
    start = rank * per + min(rank, extra)
    stop = start + per + (rank < extra)
    return slice(min(start * block, n), min(stop * block, n))


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (0-based shard ``i`` of ``n``), as given to ``--shard``.

    Raises:
        ValueError: On anything else, with the expected form.
    """
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n with 0 <= i < n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard must look like i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return i, n


def all_gather_concat(part: Any) -> Any:
    """Concatenate every rank's ``part`` (numpy arrays or tensors, first axis; or dicts, possibly nested, of
    them) in rank order.

    Every rank receives the whole; in a single process ``part`` is returned unchanged. Tensors come back on
    ``part``'s device.
    """
    if not is_distributed():
        return part
    parts: list[Any] = [None] * get_world_size()
    dist.all_gather_object(parts, _to_cpu(part))
    return _concat(parts, part)


def _to_cpu(part: Any) -> Any:
    if isinstance(part, dict):
        return {k: _to_cpu(v) for k, v in part.items()}
    return part.detach().cpu() if isinstance(part, torch.Tensor) else part


def _concat(parts: list[Any], like: Any) -> Any:
    if isinstance(like, dict):
        return {k: _concat([p[k] for p in parts], like[k]) for k in like}
    if isinstance(like, torch.Tensor):
        return torch.cat(parts).to(like.device)
    return np.concatenate(parts)


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``module``'s parameters and buffers from rank ``src`` to every rank (no-op when not distributed)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src)


def average_gradients(params: Any) -> None:
    """Average the ``.grad`` of ``params`` over processes (for steps outside DistributedDataParallel)."""
    if not is_distributed():
        return
    world = get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world
