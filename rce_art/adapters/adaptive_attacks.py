"""The adaptive attacks by name: rce-art's own batch attacks and the toolkits' cross-checks, on the detector-as-class system.

rce-art's own (APGD-CE / APGD-DLR / APGD-T, Square, the DetectorPGD modes, C&W-wb, RayS) attack the system folded
per row (one call for a batch of mixed classes). Every toolkit attack (``art-*``, ``ta-*``, ``fb-pgd``) attacks,
unchanged, the folded form of [`DetectorAsClass`][rce_art.attacks.DetectorAsClass] for the inputs of each true class:
its own untargeted success test (``argmax != y``) then holds exactly when the input is misclassified AND not
flagged, so the toolkit's early stopping and best-iterate bookkeeping serve the system's goal; they stay as named
cross-checks of rce-art's own (held to them by parity tests). Budgets are ``eps`` in pixel units, as everywhere in
rce-art; ``budget`` multiplies each attack's default iterations or queries.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from rce_art.adapters.registry import seeded_global_rngs
from rce_art.attacks.detector_class import DetectorAsClass
from rce_art.evaluation.members import (
    APGDMember,
    CWWBMember,
    DetectorPGDMember,
    EnsembleAttack,
    RaySMember,
    SquareMember,
)
from rce_art.settings import WORST_CASE

__all__ = ["ADAPTIVE_ATTACKS", "REGISTRY", "RENAMED_ATTACKS", "STANDARD_ENSEMBLE", "STANDARD_ENSEMBLE_06", "AdaptiveAttackSpec", "ToolkitMember", "build_adaptive_attack",
           "standard_ensemble"]


APGD_ITERATIONS = WORST_CASE.apgd_iterations
"""Default APGD iterations ([`rce_art.settings.WorstCaseSettings`][])."""
SQUARE_QUERIES = WORST_CASE.square_queries
"""Default Square queries ([`rce_art.settings.WorstCaseSettings`][])."""
SQUARE_MIN_SIDE = WORST_CASE.square_min_side
"""Smallest image side Square runs on ([`rce_art.settings.WorstCaseSettings`][])."""
_IMAGE_ONLY = ("art-square", "ta-square", "art-autoattack")


def _linf(norm: str) -> bool:
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    return norm == "linf"


def _art_apgd(est: Any, m: ToolkitMember, loss: str, targeted: bool = False) -> Any:
    from art.attacks.evasion import AutoProjectedGradientDescent

    return AutoProjectedGradientDescent(est, norm=np.inf if _linf(m.norm) else 2, eps=m.eps, eps_step=2 * m.eps,
                                        max_iter=m.steps(APGD_ITERATIONS), targeted=targeted, nb_random_init=1,
                                        batch_size=m.batch_size, loss_type=loss, verbose=False)


def _art_square(est: Any, m: ToolkitMember) -> Any:
    from art.attacks.evasion import SquareAttack

    return SquareAttack(est, norm=np.inf if _linf(m.norm) else 2, eps=m.eps, max_iter=m.steps(SQUARE_QUERIES), p_init=0.8,
                        nb_restarts=1, batch_size=m.batch_size, verbose=False)


def _one_hot(y: Tensor, n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[y.cpu().numpy()]


# Each toolkit attack: ``(member, folded system, x, y) -> x_adv`` on the inputs of one true class (see ToolkitMember).
def _art_apgd_ce(m: ToolkitMember, folded: DetectorAsClass, x: Tensor, y: Tensor) -> Any:
    return _art_apgd(folded.art_classifier(), m, "cross_entropy").generate(x.cpu().numpy(),
                                                                          y=_one_hot(y, folded.nb_classes))


def _art_apgd_dlr(m: ToolkitMember, folded: DetectorAsClass, x: Tensor, y: Tensor) -> Any:
    return _art_apgd(folded.art_classifier(), m, "difference_logits_ratio").generate(
        x.cpu().numpy(), y=_one_hot(y, folded.nb_classes))


def _art_apgd_t(m: ToolkitMember, folded: DetectorAsClass, x: Tensor, y: Tensor) -> Any:
    """ART's targeted APGD-DLR toward the top classes other than the true one, one target after another on the inputs
    still unbroken. ART's targeted loss and success test (the target reached) are its own, not AutoAttack's APGD-T
    (rce-art's ``apgd-t`` is)."""
    est, n = folded.art_classifier(), folded.nb_classes
    xn = x.cpu().numpy()
    out = xn.copy()
    with torch.no_grad():
        order = folded(x).argsort(1, descending=True).cpu()
    todo = np.ones(len(xn), bool)
    for k in range(1, min(m.n_targets, n - 1) + 1):
        target = torch.tensor([[c for c in row.tolist() if c != int(y[0])][k - 1] for row in order])
        idx = np.flatnonzero(todo)
        if idx.size == 0:
            break
        adv = _art_apgd(est, m, "difference_logits_ratio", targeted=True).generate(xn[idx], y=_one_hot(target[idx], n))
        out[idx] = adv
        todo[idx] = est.predict(adv).argmax(1) == int(y[0])
    return out


def _art_autoattack(m: ToolkitMember, folded: DetectorAsClass, x: Tensor, y: Tensor) -> Any:
    from art.attacks.evasion import AutoAttack

    est = folded.art_classifier()
    parts = [_art_apgd(est, m, "cross_entropy"), _art_apgd(est, m, "difference_logits_ratio"), _art_square(est, m)]
    aa = AutoAttack(est, norm=np.inf if _linf(m.norm) else 2, eps=m.eps, eps_step=2 * m.eps, attacks=parts,
                    batch_size=m.batch_size, targeted=False)
    return aa.generate(x.cpu().numpy(), y=_one_hot(y, folded.nb_classes))


def _art_square_attack(m: ToolkitMember, folded: DetectorAsClass, x: Tensor, y: Tensor) -> Any:
    try:
        return _art_square(folded.art_classifier(), m).generate(x.cpu().numpy(), y=_one_hot(y, folded.nb_classes))
    except ValueError as e:
        if "NaN" not in str(e) or _linf(m.norm):
            raise
        # ART's L2 update divides by the perturbation's norm without a floor; the norm is zero where its initial
        # perturbation was rejected (the input kept unperturbed)
        raise RuntimeError(f"ART's SquareAttack (L2) fed non-finite inputs to the model ({e}): its L2 update divides "
                           "by the perturbation's norm, which is zero where its initial perturbation was rejected "
                           "(seen on plain classifiers on digits and Fashion-MNIST). Use rce-art's 'square', which runs "
                           "L2 too") from e


def _torchattacks_run(make: Callable[[Any, DetectorAsClass, ToolkitMember, float, str], Any]
                      ) -> Callable[[ToolkitMember, DetectorAsClass, Tensor, Tensor], Any]:
    """A torchattacks attack (built by ``make(ta, folded, member, eps in [0, 1] units, norm)``) on the folded system."""
    def attack(m: ToolkitMember, folded: DetectorAsClass, x: Tensor, y: Tensor) -> Any:
        import torchattacks as ta

        from rce_art.adapters.torchattacks_attack import TorchattacksAttack

        lo, hi = folded.clip_values or (0.0, 1.0)  # an ART classifier always has them (checked by the runner)
        a = make(ta, folded, m, m.eps / (hi - lo), "Linf" if _linf(m.norm) else "L2")
        return TorchattacksAttack(a, clip_values=(lo, hi)).generate(x, y)

    return attack


_ta_apgd = _torchattacks_run(lambda ta, f, m, e, norm: ta.APGD(
    f, norm=norm, eps=e, steps=m.steps(APGD_ITERATIONS), n_restarts=1, seed=m.seed, loss="ce"))
_ta_apgdt = _torchattacks_run(lambda ta, f, m, e, norm: ta.APGDT(
    f, norm=norm, eps=e, steps=m.steps(APGD_ITERATIONS), n_restarts=1, seed=m.seed,
    n_classes=min(m.n_targets + 1, f.nb_classes)))
_ta_square = _torchattacks_run(lambda ta, f, m, e, norm: ta.Square(
    f, norm=norm, eps=e, n_queries=m.steps(SQUARE_QUERIES), n_restarts=1, seed=m.seed))


def _fb_pgd(m: ToolkitMember, folded: DetectorAsClass, x: Tensor, y: Tensor) -> Any:
    import foolbox as fb

    from rce_art.adapters.foolbox_attack import FoolboxAttack

    cls = fb.attacks.LinfPGD if _linf(m.norm) else fb.attacks.L2PGD
    a = cls(abs_stepsize=m.eps / 4, steps=m.steps(WORST_CASE.foolbox_pgd_steps), random_start=True)
    return FoolboxAttack(a, folded, clip_values=folded.clip_values, epsilon=m.eps).generate(x, y)


@dataclass
class ToolkitMember(EnsembleAttack):
    """A toolkit attack run per true class on the folded system (see the module docstring).

    Attributes:
        toolkit: ``"art"``, ``"torchattacks"`` or ``"foolbox"``.
        n_targets: Target classes of the targeted attacks (APGD-T; AutoAttack's standard: 9, ours: 3).
        batch_size: The toolkit's own batch size.
    """

    toolkit: str = "art"
    n_targets: int = WORST_CASE.n_targets
    batch_size: int = 256
    run_folded: Callable[..., Any] | None = None
    member_kind: str = "gradient"
    kind: ClassVar[str] = "gradient"

    def __post_init__(self) -> None:
        _linf(self.norm)
        self.kind = self.member_kind  # type: ignore[misc]  # per instance (Square is score-based)

    def check_input_shape(self, input_shape: tuple[int, ...] | None) -> None:
        if self.name not in _IMAGE_ONLY or input_shape is None:
            return
        if len(input_shape) != 3 or min(input_shape[1:]) < SQUARE_MIN_SIDE:
            raise ValueError(f"attack {self.name!r} (Square) runs only on images (C, H, W) of at least "
                             f"{SQUARE_MIN_SIDE}x{SQUARE_MIN_SIDE} pixels, and one input here has shape "
                             f"{tuple(input_shape)}; leave it out of the attacks (e.g. attacks=['apgd-ce', "
                             "'pgd-selective', 'apgd-t'])")

    def run(self, system: DetectorAsClass, x: Tensor, y: Tensor) -> Tensor:
        fn = self.run_folded
        if fn is None:
            raise ValueError(f"{self.name}: no toolkit attack to run (build it with build_adaptive_attack)")
        with seeded_global_rngs(self.seed, system.device):
            return system.attack_per_class(x, y, lambda f, xc, yc: fn(self, f, xc, yc))

    def describe(self) -> str:
        return f"{self.name}[{self.toolkit}](eps={self.eps:g}, norm={self.norm}, budget={self.budget:g})"


@dataclass(frozen=True)
class AdaptiveAttackSpec:
    """One entry of the adaptive-attack registry.

    Attributes:
        toolkit: ``"rce-art"`` (rce-art's own attacks), ``"art"``, ``"torchattacks"`` or ``"foolbox"``.
        kind: ``"gradient"``, ``"score"`` or ``"decision"`` (what the attack reads of the system).
        build: ``build(name=, eps=, norm=, budget=, seed=, options=) -> EnsembleAttack``.
    """

    toolkit: str
    kind: str
    build: Callable[..., EnsembleAttack]


def _toolkit(toolkit: str, kind: str, run_folded: Callable[..., Any]) -> AdaptiveAttackSpec:
    def build(options: dict[str, Any], **common: Any) -> EnsembleAttack:
        unknown = set(options) - {"n_targets", "batch_size"}
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)} for {common['name']!r}; it takes n_targets and "
                             "batch_size")
        return ToolkitMember(**common, toolkit=toolkit, run_folded=run_folded, member_kind=kind, **options)

    return AdaptiveAttackSpec(toolkit, kind, build)


def _own(kind: str, member: Callable[..., EnsembleAttack], **fixed: Any) -> AdaptiveAttackSpec:
    return AdaptiveAttackSpec("rce-art", kind, lambda options, **common: member(**fixed, **common, options=options))


REGISTRY: dict[str, AdaptiveAttackSpec] = {
    "apgd-ce": _own("gradient", APGDMember, loss="ce"),
    "apgd-dlr": _own("gradient", APGDMember, loss="dlr"),
    "apgd-t": _own("gradient", APGDMember, loss="dlr-targeted"),
    "square": _own("score", SquareMember),
    "pgd-orthogonal": _own("gradient", DetectorPGDMember, mode="orthogonal"),
    "pgd-selective": _own("gradient", DetectorPGDMember, mode="selective"),
    "pgd-combined": _own("gradient", DetectorPGDMember, mode="combined"),
    "cw-wb": _own("gradient", CWWBMember),
    "rays": _own("decision", RaySMember),
    "art-apgd-ce": _toolkit("art", "gradient", _art_apgd_ce),
    "art-apgd-dlr": _toolkit("art", "gradient", _art_apgd_dlr),
    "art-apgd-t": _toolkit("art", "gradient", _art_apgd_t),
    "art-autoattack": _toolkit("art", "gradient", _art_autoattack),
    "art-square": _toolkit("art", "score", _art_square_attack),
    "ta-apgd": _toolkit("torchattacks", "gradient", _ta_apgd),
    "ta-apgdt": _toolkit("torchattacks", "gradient", _ta_apgdt),
    "ta-square": _toolkit("torchattacks", "score", _ta_square),
    "fb-pgd": _toolkit("foolbox", "gradient", _fb_pgd),
}
"""Every adaptive attack by name, in one table: who provides it, what it reads, how it is built."""

RENAMED_ATTACKS: dict[str, str] = {"autoattack": "art-autoattack"}
"""Names of 0.6 that still build (with a ``DeprecationWarning``) until 0.8. (``apgd-ce``, ``apgd-dlr``, ``apgd-t`` and
``square`` kept their names and are rce-art's own since 0.7; ART's are ``art-*``.)"""

ADAPTIVE_ATTACKS: tuple[str, ...] = tuple(REGISTRY)
"""Names [`build_adaptive_attack`][] knows: rce-art's own (``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``square``,
``pgd-*`` = DetectorPGD modes, ``cw-wb``, ``rays``) and the toolkits' cross-checks (ART ``art-apgd-ce``,
``art-apgd-dlr``, ``art-apgd-t``, ``art-autoattack``, ``art-square``; torchattacks ``ta-apgd``, ``ta-apgdt``,
``ta-square``; Foolbox ``fb-pgd``)."""

STANDARD_ENSEMBLE: tuple[str, ...] = ("apgd-ce", "pgd-selective", "apgd-t", "square")
"""The documented standard worst-case ensemble, in its fixed order (chosen by the strength study in
``docs/results.md``): rce-art's APGD-CE on the system folded per row (the strongest single attack), selective
DetectorPGD, APGD-T (targeted DLR over the top 3 classes), then the score-based Square as the gradient-free
cross-check. Every iteration of every member is one batched forward and at most one input-only backward over the
inputs still unbroken."""


STANDARD_ENSEMBLE_06: tuple[str, ...] = ("art-apgd-ce", "pgd-selective", "art-apgd-t", "art-square")
"""0.5's and 0.6's standard ensemble (ART's APGD-CE, APGD-T and Square, per true class) under its 0.7 names: the
cross-check the strength study and ``benchmarks/worst_case.py`` run beside [`STANDARD_ENSEMBLE`][]."""


def build_adaptive_attack(name: str, eps: float, norm: str = "linf", budget: float = 1.0, seed: int = 0,
                          **options: Any) -> EnsembleAttack:
    """Build an attack of the worst-case ensemble by name.

    Args:
        name: One of [`ADAPTIVE_ATTACKS`][].
        eps: Budget in pixel units.
        norm: ``"linf"`` or ``"l2"``.
        budget: Multiplier of the attack's default iterations / queries (DetectorPGD 50 steps, APGD 50
            iterations, Square 500 queries, RayS 500 queries, Foolbox PGD 50 steps, C&W-wb 200 steps per round).
        seed: Seed of the attack's random draws (global generators are restored after a toolkit runs).
        **options: For toolkit attacks ``n_targets`` (targeted attacks, default 3) and ``batch_size``; for
            rce-art's own, constructor arguments of the underlying attack.

    Returns:
        An [`EnsembleAttack`][rce_art.evaluation.EnsembleAttack] for [`WorstCaseEnsemble`][rce_art.evaluation.WorstCaseEnsemble].

    Raises:
        ValueError: On an unknown name, a bad norm, or a non-positive eps or budget.
    """
    if name in RENAMED_ATTACKS:
        warnings.warn(f"adaptive attack {name!r} is now {RENAMED_ATTACKS[name]!r}; the old name stops working in "
                      "rce-art 0.8", DeprecationWarning, stacklevel=2)
        name = RENAMED_ATTACKS[name]
    if name not in ADAPTIVE_ATTACKS:
        raise ValueError(f"unknown adaptive attack {name!r}; choose one of {ADAPTIVE_ATTACKS}")
    if not (np.isfinite(eps) and eps > 0) or not (np.isfinite(budget) and budget > 0):
        raise ValueError(f"eps and budget must be finite numbers > 0, got eps={eps!r}, budget={budget!r}")
    _linf(norm)
    common: dict[str, Any] = {"name": name, "eps": float(eps), "norm": norm, "budget": float(budget),
                              "seed": int(seed)}
    return REGISTRY[name].build(dict(options), **common)


def standard_ensemble(eps: float, norm: str = "linf", budget: float = 1.0, seed: int = 0) -> list[EnsembleAttack]:
    """The [`STANDARD_ENSEMBLE`][] built at one budget, in its order."""
    return [build_adaptive_attack(n, eps, norm, budget, seed) for n in STANDARD_ENSEMBLE]
