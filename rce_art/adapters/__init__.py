"""Toolkit glue: thin adapters for ART, Foolbox and torchattacks attacks, the paper's attack set by name, and
pytorch-ood's detectors on rce-art's detector contract ([`OODDetector`][rce_art.adapters.OODDetector]).

Each attack adapter takes the toolkit's own attack object and returns adversarial inputs
with the type, shape, dtype and device of the input, within the clip range, leaving the
input untouched and the model's train/eval mode as it was. Foolbox and torchattacks are
optional extras (as is pytorch-ood), imported only when their adapter is used. Nothing in the core of rce-art
imports this package (an ``import-linter`` contract in ``pyproject.toml`` enforces it).
"""

from rce_art.adapters.adaptive_attacks import (
    ADAPTIVE_ATTACKS,
    STANDARD_ENSEMBLE,
    STANDARD_ENSEMBLE_06,
    ToolkitMember,
    build_adaptive_attack,
    standard_ensemble,
)
from rce_art.adapters.art_attack import ARTAttack
from rce_art.adapters.foolbox_attack import FoolboxAttack
from rce_art.adapters.ood import OODDetector
from rce_art.adapters.ood_named import OOD_ALIASES, build_ood_detector
from rce_art.adapters.registry import AVAILABLE, BACKENDS, PAPER_ATTACKS, PaperAttack, build_attack
from rce_art.adapters.torchattacks_attack import TorchattacksAttack

__all__ = [
    "ADAPTIVE_ATTACKS",
    "AVAILABLE",
    "BACKENDS",
    "OOD_ALIASES",
    "PAPER_ATTACKS",
    "STANDARD_ENSEMBLE",
    "STANDARD_ENSEMBLE_06",
    "ARTAttack",
    "FoolboxAttack",
    "OODDetector",
    "PaperAttack",
    "ToolkitMember",
    "TorchattacksAttack",
    "build_adaptive_attack",
    "build_attack",
    "build_ood_detector",
    "standard_ensemble",
]
