"""Where a well-kept library already computes what rce-art hand-writes: checked equal, and the reason ours is kept
(docs/concepts.md, "Library code and ours")."""

import math

import numpy as np
import pytest
import torch

from rce_art.detectors.combiner import matched_gaussian_noise
from rce_art.training.loop import cosine_lr, piecewise_lr


def _torch_lrs(scheduler_cls, base, total, **kw):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = scheduler_cls(opt, **kw)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


@pytest.mark.parametrize("base,gamma", [(0.1, 0.1), (0.05, 0.1), (0.07, 0.2)])
def test_piecewise_schedule_is_torchs_multisteplr(base, gamma):
    """Kept: ours is base * gamma**k in one rounding; MultiStepLR multiplies step by step (the same numbers for the
    paper's 0.1 / 0.05, last-bit differences for others)."""
    total = 400
    ours = np.array([base * piecewise_lr(s, total, (0.5, 0.75), gamma) for s in range(total)])
    theirs = _torch_lrs(torch.optim.lr_scheduler.MultiStepLR, base, total, gamma=gamma,
                        milestones=[math.ceil(0.5 * total), math.ceil(0.75 * total)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=0)
    if base in (0.1, 0.05):
        np.testing.assert_array_equal(ours, theirs)


def test_cosine_schedule_is_torchs_cosineannealinglr():
    """Kept: ours is the closed form; CosineAnnealingLR's recursive update accumulates rounding (8e-17 here)."""
    total = 1000
    ours = np.array([0.1 * cosine_lr(s, total) for s in range(total)])
    theirs = _torch_lrs(torch.optim.lr_scheduler.CosineAnnealingLR, 0.1, total, T_max=total, eta_min=0.0)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-15)


def test_matched_noise_bisection_finds_brents_root():
    """Kept: scipy's brentq finds the same scale (within 1e-9) in fewer evaluations, but the bisection costs
    milliseconds once per combiner fit, and switching would move published numbers at the float level for nothing."""
    from scipy.optimize import brentq

    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, size=(40, 1, 8, 8)).astype(np.float32)
    x_adv = np.clip(x + 0.15 * np.sign(rng.normal(size=x.shape)), -0.5, 0.5).astype(np.float32)
    _, std = matched_gaussian_noise(x, x_adv, (-0.5, 0.5), seed=0)
    xt = torch.as_tensor(x, dtype=torch.float64)
    noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = float((torch.as_tensor(x_adv, dtype=torch.float64) - xt).flatten(1).norm(dim=1).mean())

    def excess(s):
        return float(((xt + s * noise).clamp(-0.5, 0.5) - xt).flatten(1).norm(dim=1).mean()) - target

    assert std == pytest.approx(brentq(excess, 0.0, 1.0, xtol=1e-14), rel=1e-9)
