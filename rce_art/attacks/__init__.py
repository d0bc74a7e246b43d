"""Attacks written by rce-art: the adaptive C&W-wb and detector PGD (torch, ART and torchattacks forms), the
tensor-native APGD (CE, DLR, APGD-T; Croce & Hein 2020) and L-inf Square (Andriushchenko et al. 2020) that attack a
classifier + detector folded per row, the hard-label RayS (Chen & Gu 2020) and RAND noise.

The paper's oblivious attack set, built on ART, Foolbox or torchattacks, lives with the toolkit
glue in [`rce_art.adapters`][rce_art.adapters] (``build_attack``).
"""

from typing import Any

from rce_art.attacks.apgd import APGD, BatchAttackResult, dlr_loss, targeted_dlr_loss
from rce_art.attacks.cw_wb import CarliniWagnerWB, CWResult, detector_term, margin_term
from rce_art.attacks.cw_wb_art import CarliniWagnerWBART
from rce_art.attacks.detector_class import DetectorAsClass, fold_rows, system_success
from rce_art.attacks.detector_pgd import (
    DetectorPGD,
    DetectorPGDResult,
    classifier_logits,
    classifier_margin,
    orthogonalise,
    project,
)
from rce_art.attacks.detector_pgd_art import DetectorPGDART
from rce_art.attacks.noise import UniformNoise
from rce_art.attacks.rays import RayS, RaySResult
from rce_art.attacks.square import Square, square_fraction

__all__ = [
    "APGD",
    "BatchAttackResult",
    "CWResult",
    "CarliniWagnerWB",
    "CarliniWagnerWBART",
    "CarliniWagnerWBTorchattacks",
    "DetectorAsClass",
    "DetectorPGD",
    "DetectorPGDART",
    "DetectorPGDResult",
    "DetectorPGDTorchattacks",
    "RayS",
    "RaySResult",
    "Square",
    "UniformNoise",
    "classifier_logits",
    "classifier_margin",
    "detector_term",
    "dlr_loss",
    "fold_rows",
    "margin_term",
    "orthogonalise",
    "project",
    "square_fraction",
    "system_success",
    "targeted_dlr_loss",
]


def __getattr__(name: str) -> Any:
    # torchattacks is an optional extra: its form is imported on first use.
    if name == "CarliniWagnerWBTorchattacks":
        from rce_art.attacks.cw_wb_torchattacks import CarliniWagnerWBTorchattacks

        return CarliniWagnerWBTorchattacks
    if name == "DetectorPGDTorchattacks":
        from rce_art.attacks.detector_pgd_torchattacks import DetectorPGDTorchattacks

        return DetectorPGDTorchattacks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
