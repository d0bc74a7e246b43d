"""Sanity checks for adaptive attacks (Carlini et al., "On Evaluating Adversarial Robustness", 2019)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rce_art._tensors import eval_mode
from rce_art.attacks.cw_wb import CarliniWagnerWB
from rce_art.detectors.kernel import class_log_kdensity

__all__ = ["cw_wb_sanity"]


def cw_wb_sanity(
    attack: CarliniWagnerWB,
    detector: Any,
    x: Any,
    labels: Any,
    targeted: bool = False,
    budgets: Sequence[int] = (50, 100, 200),
    unbounded_iter: int = 1000,
) -> dict[str, Any]:
    """Check that a C&W-wb evaluation is not broken.

    Reports:

    * ``success_by_budget``: success rate as the iteration budget doubles; it must not fall
      (``monotone``), else the optimisation or the bookkeeping is faulty.
    * ``unbounded_misclassification``: misclassification rate of plain C&W (no detector term)
      with a large ``c``, ``unbounded_iter`` steps and a step size of at least 0.1; it should reach 100%, else the attack is
      too weak to support any robustness claim.
    * ``zero_grad_fraction`` / ``nonfinite_grad_fraction``: fraction of inputs whose gradient of
      ``log KD`` (the detector term) with respect to the input is zero or non-finite; both should
      be 0, else the detector masks gradients and gradient-based attacks underestimate it.

    Args:
        attack: The configured attack (its other settings are kept).
        detector: The fitted K-density detector.
        x: Clean inputs ``(N, ...)``; labels: targets (``targeted``) or true labels.
        budgets: Iteration budgets, in increasing order.
        unbounded_iter: Steps of the "unbounded" run.

    Returns:
        Dict with the entries above. The model runs in eval mode; its mode is restored.
    """
    x = torch.as_tensor(x, dtype=torch.float32).to(detector.device)
    labels = torch.as_tensor(labels).to(detector.device)
    rates = []
    for b in budgets:
        r = CarliniWagnerWB(**{**attack.params(), "max_iter": int(b)}).run(detector, x, labels, targeted)
        rates.append(float(r.success.float().mean()))
    strong = CarliniWagnerWB(**{**attack.params(), "max_iter": unbounded_iter,
                                "initial_const": max(attack.initial_const, 10.0), "binary_search_steps": 3,
                                "phase1_const": max(attack.phase1_const, 10.0), "abort_early": False,
                                "learning_rate": max(attack.learning_rate, 0.1)})
    unbounded = strong.run(detector, x, labels, targeted).misclassified.float().mean()
    xg = x.clone().requires_grad_(True)
    with eval_mode(detector.model):
        logits, feats = detector.logits_and_features(xg)
        cls = labels if targeted else logits.argmax(1)
        class_log_kdensity(feats, cls, attack.attacker_kernels(detector), detector.bandwidth_).sum().backward()
    g = xg.grad.flatten(1)
    return {
        "budgets": list(budgets),
        "success_by_budget": rates,
        "monotone": all(b >= a - 1e-9 for a, b in zip(rates, rates[1:])),
        "unbounded_misclassification": float(unbounded),
        "zero_grad_fraction": float((g.abs().sum(1) == 0).float().mean()),
        "nonfinite_grad_fraction": float((~torch.isfinite(g).all(1)).float().mean()),
    }
