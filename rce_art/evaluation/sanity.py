"""Sanity checks for adaptive attacks (Carlini et al., "On Evaluating Adversarial Robustness", 2019)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from rce_art._tensors import eval_mode
from rce_art.attacks.cw_wb import CarliniWagnerWB
from rce_art.attacks.detector_pgd import DetectorPGD
from rce_art.detectors.calibration import is_flagged
from rce_art.detectors.kernel import class_log_kdensity

__all__ = ["cw_wb_sanity", "detector_pgd_sanity"]


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
        x: Clean inputs ``(N, ...)``.
        labels: Targets (``targeted``) or true labels ``(N,)``.
        targeted: Whether ``labels`` are targets.
        budgets: Iteration budgets, in increasing order.
        unbounded_iter: Steps of the "unbounded" run.

    Returns:
        Dict with the entries above. The model runs in eval mode; its mode is restored.
    """
    x = torch.as_tensor(x, dtype=torch.float32).to(detector.device)
    labels = torch.as_tensor(labels).to(detector.device)
    rates = []
    for b in budgets:
        r = CarliniWagnerWB(**{**attack.params(), "max_iter": int(b), "targeted": targeted}).run(detector, x, labels)
        rates.append(float(r.success.float().mean()))
    strong = CarliniWagnerWB(**{**attack.params(), "max_iter": unbounded_iter,
                                "initial_const": max(attack.initial_const, 10.0), "binary_search_steps": 3,
                                "phase1_const": max(attack.phase1_const, 10.0), "abort_early": False,
                                "learning_rate": max(attack.learning_rate, 0.1), "targeted": targeted})
    unbounded = strong.run(detector, x, labels).misclassified.float().mean()
    xg = x.clone().requires_grad_(True)
    with eval_mode(detector.model):
        logits, feats = detector.logits_and_features(xg)
        cls = labels if targeted else logits.argmax(1)
        term = class_log_kdensity(feats, cls, attack.attacker_kernels(detector), detector.bandwidth_).sum()
        grad = torch.autograd.grad(term, xg)[0]  # the input's gradient only: the model's parameters keep no .grad
    return _report(budgets, rates, float(unbounded), grad)


def detector_pgd_sanity(
    attack: DetectorPGD,
    detector: Any,
    x: Any,
    labels: Any,
    budgets: Sequence[int] = (25, 50, 100),
    unbounded_steps: int = 200,
) -> dict[str, Any]:
    """Check that a fixed-budget adaptive evaluation ([`DetectorPGD`][rce_art.attacks.DetectorPGD]) is not broken.

    Reports, for any detector of the family (Carlini et al., "On Evaluating Adversarial Robustness", 2019):

    * ``success_by_budget``: success (goal met AND not flagged at ``detector.threshold_``) as the number of steps
      grows; it must not fall (``monotone``), else the optimisation or the bookkeeping is faulty;
    * ``unbounded_misclassification``: the classifier-only attack with an ``eps`` covering the whole pixel range and
      ``unbounded_steps`` steps; it should reach 100%;
    * ``zero_grad_fraction`` / ``nonfinite_grad_fraction``: inputs whose detector-score gradient is zero or
      non-finite; both should be 0, else the detector masks gradients;
    * ``outcomes``: per budget, the per-input ``misclassified`` and ``score`` (float64 of the float32 score) of the
      examples, so that success can be counted at any other threshold.

    Returns:
        Dict with the entries above. The model runs in eval mode; its mode is restored.
    """
    x = torch.as_tensor(x, dtype=torch.float32).to(detector.device)
    labels = torch.as_tensor(labels).to(detector.device)
    rates, outcomes = [], []
    for b in budgets:
        r = DetectorPGD(**{**attack.params(), "steps": int(b)}).run(detector, x, labels)
        with torch.no_grad(), eval_mode(detector.model):
            score = detector.logits_and_score(r.x_adv)[1]
        flagged = is_flagged(score, detector.threshold_)
        rates.append(float((r.misclassified & ~flagged).float().mean()))
        outcomes.append({"misclassified": r.misclassified.cpu().tolist(), "score": score.double().cpu().tolist()})
    lo, hi = detector.clip_values
    wide = DetectorPGD(**{**attack.params(), "eps": float(hi - lo), "mode": "classifier", "steps": unbounded_steps,
                          "step_size": (hi - lo) / 50})
    unbounded = wide.run(detector, x, labels).misclassified.float().mean()
    xg = x.clone().requires_grad_(True)
    with eval_mode(detector.model):
        grad = torch.autograd.grad(detector.logits_and_score(xg)[1].sum(), xg)[0]  # no .grad left on the model
    return {**_report(budgets, rates, float(unbounded), grad), "outcomes": outcomes}


def _report(budgets: Sequence[int], rates: list[float], unbounded: float, grad: Tensor) -> dict[str, Any]:
    """The sanity report shared by the checks: success by budget, its monotonicity, unbounded misclassification,
    and the fractions of inputs with a zero or non-finite detector gradient."""
    g = grad.flatten(1)
    return {
        "budgets": list(budgets),
        "success_by_budget": rates,
        "monotone": all(b >= a - 1e-9 for a, b in itertools.pairwise(rates)),
        "unbounded_misclassification": unbounded,
        "zero_grad_fraction": float((g.abs().sum(1) == 0).float().mean()),
        "nonfinite_grad_fraction": float((~torch.isfinite(g).all(1)).float().mean()),
    }
