"""One home for every set of hyper-parameters the library and its scripts use.

Each set is the paper's setting (``paper=True``) or a quick one that fits a 2-core CPU budget;
scripts print the set they used next to every result. Values are copied into the objects that
use them, never mutated.

References:
    Pang et al., Towards Robust Detection of Adversarial Examples, NeurIPS 2018, Appendix B.1
    (training) and B.2 (attacks); the authors' code (``test_adv.py``) for the two phases of C&W-wb.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "ER_PAPER",
    "LEMESLE_GRID",
    "LEMESLE_SGD",
    "PAPER_STEPS",
    "SGD",
    "WORST_CASE",
    "WorstCaseSettings",
    "cw_settings",
    "cw_wb_settings",
    "er_training_settings",
    "sgd_settings",
]

SGD: dict[str, Any] = {
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 2e-4,
    "batch_size": 128,
    "milestones": (0.5, 0.75),
    "gamma": 0.1,
}
"""SGD with momentum, weight decay and a piecewise schedule (Appendix B.1): learning rate 0.1, dropped by 10x at 50% and 75% of training (MNIST: steps 10k and 15k of 20k), batch 128, weight decay 2e-4."""

PAPER_STEPS: dict[str, int] = {"mnist": 20_000, "mnist-5k": 20_000, "fashion-mnist": 20_000, "cifar10": 90_000,
                               "digits": 20_000}
"""The paper's training length in SGD steps of batch 128 (Appendix B.1; digits, MNIST-5k and Fashion-MNIST as MNIST)."""


def sgd_settings(**overrides: Any) -> dict[str, Any]:
    """A copy of [`SGD`][] with ``overrides`` applied (e.g. ``batch_size=64`` for digits)."""
    unknown = set(overrides) - set(SGD)
    if unknown:
        raise ValueError(f"unknown SGD settings {sorted(unknown)}; known: {sorted(SGD)}")
    return {**SGD, **overrides}


def cw_settings(paper: bool) -> dict[str, Any]:
    """Oblivious C&W-L2 (Table 2): the paper's 9 binary-search rounds x 10,000 steps of 0.01, or quick ones.

    Keys follow ART's ``CarliniL2Method`` (``binary_search_steps``, ``max_iter``, ``learning_rate``,
    ``initial_const``); the registry translates them for Foolbox and torchattacks.
    """
    if paper:
        return {"binary_search_steps": 9, "max_iter": 10_000, "learning_rate": 0.01, "initial_const": 1e-3}
    return {"binary_search_steps": 3, "max_iter": 100, "learning_rate": 0.01, "initial_const": 0.1}


def cw_wb_settings(paper: bool, max_iter: int | None = None) -> dict[str, Any]:
    """C&W-wb (Table 3): keyword arguments of [`rce_art.attacks.CarliniWagnerWB`][rce_art.attacks.CarliniWagnerWB].

    Both sets follow the authors' code for the two phases: phase 1 (plain C&W) from ``c = 10`` for 3
    binary-search rounds, phase 2 (with the detector term) from ``c = 100`` for 9 rounds. The paper's set
    runs 10,000 Adam steps of 0.01 per round (the authors' phase 1 stops at 5,000); the quick set runs
    ``max_iter`` (default 200) steps of 0.05, which a small model needs to converge in that budget.

    Args:
        paper: The paper's iteration budget and step size.
        max_iter: Steps per round of the quick set (ignored with ``paper``).
    """
    phases = {"phase1_const": 10.0, "phase1_search_steps": 3, "initial_const": 100.0, "binary_search_steps": 9}
    if paper:
        return {**phases, "max_iter": 10_000, "learning_rate": 0.01}
    return {**phases, "max_iter": 200 if max_iter is None else int(max_iter), "learning_rate": 0.05}


LEMESLE_SGD: dict[str, Any] = {
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 256,
    "schedule": "cosine",
    "augment": "crop-flip",
    "epochs": 200,
}
"""Lemesle & Vernade's training set-up (Table 1, CIFAR-10, ResNet-32): SGD 0.1 with momentum 0.9, weight decay
5e-4, cosine annealing, 200 epochs of batch 256, random crops (padding 4: ours, not given) and horizontal flips.
For their MNIST grid (Section 4.4) the set-up is not given; ours drops the flips (digits are not mirror-symmetric)."""

LEMESLE_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4, 0.8, 1.0)
"""The report's grid of ``lambda_1`` (label smoothing toward RCE) and ``lambda_2`` (logit squeezing), Section 4.4."""


ER_PAPER: dict[str, Any] = {
    "eps": {"mnist": 0.3, "cifar10": 0.03, "stl10": 0.03, "tiny-imagenet": 0.01},
    "epochs": 30,
    "cw": {"binary_search_steps": 5, "max_iter": 30_000, "learning_rate": 0.1, "initial_const": 1.0},
    "cw_l2_bound": 0.005,
    "detection_cw_bound": {"mnist": 0.007, "cifar10": 0.004},
    "rays_queries": 10_000,
    "n_examples": 1000,
}
"""The ER paper's evaluation settings (Li et al., Section 4): l_inf eps of AutoAttack / RayS / detection per
dataset (pixel range 1), 30 training epochs, Athalye et al.'s C&W-L2 for Table 2 (5 binary-search rounds x
30,000 steps of 0.1 from c = 1; ART's ``CarliniL2Method`` names), its l2 bound, the detection C&W bounds, RayS'
query budget and the number of test samples."""


def er_training_settings(paper: bool, eps: float, digits: bool = False) -> dict[str, Any]:
    """ER-Classifier's training settings: ``paper`` (30 epochs, 40 PGD steps) or quick; ours where the paper's
    appendix is missing (k, lambda, critic, encoder step, optimiser, PGD step size), printed with every result.

    Args:
        paper: The paper's length (30 epochs) and a 40-step training PGD.
        eps: Training PGD budget in pixel units.
        digits: Quick settings for scikit-learn's 8x8 digits (more epochs of a smaller batch).
    """
    return {
        "epochs": ER_PAPER["epochs"] if paper else (15 if digits else 3),
        "batch_size": 64 if digits else 128,
        "lr": 0.05,
        "k": 32,
        "lam": 1.0,
        "pgd_eps": eps,
        "pgd_alpha": eps / 4,
        "pgd_steps": 40 if paper else 7,
        "critic_clip": 0.01,
        "encoder_lr": 3e-5,
        "encoder_step": "adam",
        "trades_beta": 6.0,
    }


@dataclass(frozen=True)
class WorstCaseSettings:
    """The worst-case evaluation's defaults (``rce_art.evaluate``, the ensemble members, the diagnostics), in one place.

    Iterations and queries are per attack at budget 1 (``"standard"``); a budget multiplies them. Frozen: pass a
    changed copy (``dataclasses.replace(WORST_CASE, ...)``) where a caller takes one, never mutate.

    Attributes:
        budgets: Budget multipliers by name (``quick``: a fifth of the standard, for a first look and the extra
            operating points of the SR-vs-FPR curve).
        apgd_iterations: APGD iterations (ART and torchattacks; AutoAttack's CIFAR-10 setting: 100). The strength study
            found no input that 10x more iterations broke and the standard ensemble missed (docs/results.md).
        square_queries: Square queries (AutoAttack: 5000 on CIFAR-10; 8x8 and 28x28 inputs have few pixels to search).
        square_min_side: Smallest image side Square runs on (ART's Square draws square windows inside the image: on
            4x4 inputs its first window covers the image and it fails).
        detector_pgd_steps: DetectorPGD steps (each mode), and the oblivious attack's.
        cw_wb_steps: C&W-wb Adam steps per binary-search round.
        rays_queries: RayS queries per input.
        foolbox_pgd_steps: Foolbox PGD steps.
        n_targets: Target classes of the targeted attacks (APGD-T; AutoAttack's standard: 9, ours: 3).
        sanity_inputs: Inputs the diagnostics attack (the first ones of the evaluation).
        eps_fractions: Fractions of eps of the diagnostics' success-vs-eps curve.
        gallery_per_unit: Broken inputs per unit whose pixels the report's gallery keeps.
        curve_fprs: Extra operating points of the SR-vs-FPR curve (quick budget).
    """

    budgets: Any = field(default_factory=lambda: MappingProxyType({"quick": 0.2, "standard": 1.0}))
    apgd_iterations: int = 50
    square_queries: int = 500
    square_min_side: int = 5
    detector_pgd_steps: int = 50
    cw_wb_steps: int = 200
    rays_queries: int = 500
    foolbox_pgd_steps: int = 50
    n_targets: int = 3
    sanity_inputs: int = 32
    eps_fractions: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5)
    gallery_per_unit: int = 3
    curve_fprs: tuple[float, ...] = (0.01, 0.1, 0.2, 0.3)


WORST_CASE = WorstCaseSettings()
"""The defaults in force."""
