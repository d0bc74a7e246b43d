"""Attacks that join the worst-case ensemble: the common interface, and rce-art's own attacks in that form.

Each member attacks a [`DetectorAsClass`][rce_art.attacks.DetectorAsClass] system (a classifier with its detector
at one threshold) within a fixed budget and returns candidate examples; the runner
([`WorstCaseEnsemble`][rce_art.evaluation.WorstCaseEnsemble]) decides success itself. The toolkits' attacks (ART,
torchattacks, Foolbox) join through the same interface in the toolkit glue
([`rce_art.adapters.build_adaptive_attack`][rce_art.adapters.build_adaptive_attack]).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from rce_art.attacks.apgd import APGD
from rce_art.attacks.cw_wb import CarliniWagnerWB
from rce_art.attacks.detector_class import DetectorAsClass
from rce_art.attacks.detector_pgd import DetectorPGD, project
from rce_art.attacks.rays import RayS
from rce_art.attacks.square import Square
from rce_art.settings import WORST_CASE

__all__ = ["APGDMember", "CWWBMember", "DetectorPGDMember", "EnsembleAttack", "RaySMember", "SquareMember"]

KINDS = ("gradient", "score", "decision")


@dataclass
class EnsembleAttack:
    """One attack of the ensemble: a name, a kind, a budget, and ``run(system, x, y) -> x_adv``.

    Attributes:
        name: Registry name (e.g. ``"pgd-orthogonal"``, ``"apgd-t"``).
        eps: Budget in pixel units.
        norm: ``"linf"`` or ``"l2"``.
        budget: Multiplier of the default iterations / queries (``1``: the default; the strength study runs ``10``).
        seed: Seed of the attack's random draws.
        kind: ``"gradient"``, ``"score"`` (queries scores only) or ``"decision"`` (hard labels only); the gradient-free
            kinds are the cross-check against gradient masking.
    """

    name: str
    eps: float
    norm: str = "linf"
    budget: float = 1.0
    seed: int = 0
    kind: ClassVar[str] = "gradient"
    options: dict[str, Any] = field(default_factory=dict)

    def applies_to(self, detector: Any) -> bool:
        """Whether this attack can attack ``detector`` (all do, except attacks specific to one detector)."""
        return True

    def check_input_shape(self, input_shape: tuple[int, ...] | None) -> None:
        """Raise a ``ValueError`` naming the fix if this attack cannot run on inputs of ``input_shape`` (one
        input's shape), before any work: every attack runs on any shape, except those that say otherwise.

        Args:
            input_shape: Shape of one input, e.g. ``(C, H, W)``; ``None`` if unknown.
        """

    def scaled(self, factor: float) -> EnsembleAttack:
        """The same attack with its budget multiplied by ``factor``."""
        return dataclasses.replace(self, budget=self.budget * float(factor))

    def steps(self, default: int) -> int:
        """``default`` iterations / queries times the budget multiplier (at least 1)."""
        return max(1, round(default * self.budget))

    def run(self, system: DetectorAsClass, x: Tensor, y: Tensor) -> Tensor:
        """Candidate adversarial examples for ``x`` (true labels ``y``), same shape, on the system's device."""
        raise NotImplementedError

    def describe(self) -> str:
        """``name(budget=..., ...)`` for printing next to results."""
        extra = "".join(f", {k}={v}" for k, v in self.options.items())
        return f"{self.name}(eps={self.eps:g}, norm={self.norm}, budget={self.budget:g}{extra})"


@dataclass
class DetectorPGDMember(EnsembleAttack):
    """[`DetectorPGD`][rce_art.attacks.DetectorPGD] in one of its modes; ``steps(50)`` steps, one random start,
    ``eot_samples`` from the system (the system's EOT setting)."""

    mode: str = "orthogonal"

    def run(self, system: DetectorAsClass, x: Tensor, y: Tensor) -> Tensor:
        attack = DetectorPGD(self.eps, norm=self.norm, mode=self.mode, steps=self.steps(WORST_CASE.detector_pgd_steps), seed=self.seed,
                             eot_samples=system.eot_samples, **self.options)
        return attack.run(system.detector, x, y).x_adv


@dataclass
class CWWBMember(EnsembleAttack):
    """C&W-wb (Pang et al. 2018, Sec. 4.4) on K-density detectors, its L2-minimal example projected onto the budget
    (ours: C&W-wb is unbounded); ``steps(200)`` Adam steps per binary-search round."""

    def applies_to(self, detector: Any) -> bool:
        return callable(getattr(detector, "kernels", None)) and hasattr(detector, "bandwidth_")

    def run(self, system: DetectorAsClass, x: Tensor, y: Tensor) -> Tensor:
        attack = CarliniWagnerWB(max_iter=self.steps(WORST_CASE.cw_wb_steps), **self.options)
        x_adv = attack.run(system.detector, x, y).x_adv.to(x.device)
        clip = system.clip_values
        if clip is None:
            raise ValueError("C&W-wb in the ensemble needs the classifier's clip_values")
        return project(x_adv, x, self.eps, self.norm, clip)


@dataclass
class RaySMember(EnsembleAttack):
    """Hard-label RayS (Chen & Gu 2020) on the system: "flagged" is a failure (the folded form per true class);
    ``steps(500)`` queries per input. L-inf only."""

    kind: ClassVar[str] = "decision"

    def check_input_shape(self, input_shape: tuple[int, ...] | None) -> None:
        if self.norm != "linf":
            raise ValueError("RayS is an L-inf attack; use it with norm='linf' or leave 'rays' out of the attacks")

    def run(self, system: DetectorAsClass, x: Tensor, y: Tensor) -> Tensor:
        self.check_input_shape(None)

        def attack(folded: DetectorAsClass, xc: Tensor, yc: Tensor) -> Tensor:
            rays = RayS(folded, self.eps, max_queries=self.steps(WORST_CASE.rays_queries), clip_values=system.clip_values, **self.options)
            return torch.as_tensor(rays.generate(xc, yc))

        return system.attack_per_class(x, y, attack)


def _checked_options(cls: type, options: dict[str, Any], fixed: set[str], name: str) -> None:
    unknown = set(options) - (set(cls.PARAMS) - fixed)  # type: ignore[attr-defined]
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)} for {name!r}; it takes "
                         f"{sorted(set(cls.PARAMS) - fixed)}")  # type: ignore[attr-defined]


@dataclass
class APGDMember(EnsembleAttack):
    """rce-art's [`APGD`][rce_art.attacks.APGD] on the system folded per row: APGD-CE (``loss="ce"``), APGD-DLR
    (``"dlr"``) or APGD-T (``"dlr-targeted"``, ``n_targets`` target classes, default 3); ``steps(50)`` iterations
    (per target), each one forward and one input-only backward over the inputs still unbroken."""

    loss: str = "ce"

    def __post_init__(self) -> None:
        _checked_options(APGD, self.options, {"eps", "norm", "loss", "steps", "seed"}, self.name)

    def applies_to(self, detector: Any) -> bool:
        """The DLR losses need 3 classes (APGD-T: 4); a binary task (the binarization test) takes only APGD-CE."""
        need = {"ce": 2, "dlr": 3, "dlr-targeted": 4}.get(self.loss, 2)
        return int(getattr(detector, "nb_classes_", need)) >= need

    def run(self, system: DetectorAsClass, x: Tensor, y: Tensor) -> Tensor:
        options = {"n_targets": WORST_CASE.n_targets, **self.options}
        attack = APGD(self.eps, self.norm, self.loss, steps=self.steps(WORST_CASE.apgd_iterations), seed=self.seed,
                      **options)
        return attack.run(system, x, y).x_adv


@dataclass
class SquareMember(EnsembleAttack):
    """rce-art's [`Square`][rce_art.attacks.Square] (L-inf or L2) on the system folded per row; ``steps(500)`` queries
    per input, one forward of the candidates each, inputs leaving the batch as they break. Images ``(C, H, W)``
    only."""

    kind: ClassVar[str] = "score"

    def __post_init__(self) -> None:
        _checked_options(Square, self.options, {"eps", "queries", "seed", "norm"}, self.name)

    def check_input_shape(self, input_shape: tuple[int, ...] | None) -> None:
        if input_shape is not None and len(input_shape) != 3:
            raise ValueError(f"attack {self.name!r} (Square) runs only on images (C, H, W), and one input here has "
                             f"shape {tuple(input_shape)}; leave it out of the attacks (e.g. attacks=['apgd-ce', "
                             "'pgd-selective', 'apgd-t'])")

    def run(self, system: DetectorAsClass, x: Tensor, y: Tensor) -> Tensor:
        self.check_input_shape(tuple(x.shape[1:]))
        attack = Square(self.eps, queries=self.steps(WORST_CASE.square_queries), seed=self.seed, norm=self.norm,
                        **self.options)
        return attack.run(system, x, y).x_adv
