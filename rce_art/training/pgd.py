"""The l_inf PGD that adversarial training runs inside its loop (Madry et al. 2018; TRADES' KL form)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rce_art._tensors import eval_mode

__all__ = ["linf_pgd"]


def linf_pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    alpha: float,
    steps: int,
    clip_values: tuple[float, float],
    *,
    random_start: bool = True,
    objective: str = "ce",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Untargeted l_inf PGD: ``x <- clip(Pi_eps(x + alpha * sign(grad_x loss)))`` for ``steps`` steps.

    Runs the model in eval mode (restored after), as ART's PGD does through ``loss_gradient``.

    Args:
        model: Raw-input model giving logits.
        x: Clean batch ``(N, ...)``.
        y: Labels ``(N,)``.
        eps: l_inf budget in pixel units.
        alpha: Step size.
        steps: Number of steps (0: return ``x``, or the random start).
        clip_values: Pixel range.
        random_start: Start from a uniform point of the eps-ball (Madry); for ``"kl"`` TRADES' ``0.001 N(0, 1)``.
        objective: ``"ce"`` (ascend CE on ``y``) or ``"kl"`` (ascend ``KL(f(x) || f(x'))``, TRADES).
        generator: Source of the random start (CPU); default a fresh unseeded one.

    Returns:
        Adversarial batch, detached, within the eps-ball and the pixel range.
    """
    if objective not in ("ce", "kl"):
        raise ValueError(f"objective must be 'ce' or 'kl', got {objective!r}")
    lo, hi = clip_values
    x = x.detach()
    gen = generator if generator is not None else torch.Generator()
    with eval_mode(model):
        if objective == "kl":
            with torch.no_grad():
                p_clean = F.log_softmax(model(x), 1)
            noise = torch.randn(x.shape, generator=gen).to(x) * 0.001 if random_start else torch.zeros_like(x)
        else:
            noise = (torch.rand(x.shape, generator=gen).to(x) * 2 - 1) * eps if random_start else torch.zeros_like(x)
        x_adv = (x + noise).clamp(lo, hi)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            logits = model(x_adv)
            if objective == "kl":
                loss = F.kl_div(F.log_softmax(logits, 1), p_clean, reduction="sum", log_target=True)
            else:
                loss = F.cross_entropy(logits, y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach() + alpha * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(lo, hi)
    return x_adv.detach()
