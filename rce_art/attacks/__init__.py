"""Attacks: the paper's oblivious attack set on ART, Foolbox or torchattacks, and RAND noise."""

from rce_art.attacks.cw_wb import CarliniWagnerWB, CWResult, detector_term, margin_term
from rce_art.attacks.noise import UniformNoise
from rce_art.attacks.registry import AVAILABLE, BACKENDS, PAPER_ATTACKS, PaperAttack, build_attack, cw_settings

__all__ = [
    "AVAILABLE",
    "BACKENDS",
    "CWResult",
    "CarliniWagnerWB",
    "PAPER_ATTACKS",
    "PaperAttack",
    "UniformNoise",
    "build_attack",
    "cw_settings",
    "detector_term",
    "margin_term",
]
