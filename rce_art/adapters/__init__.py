"""Thin adapters between rce-art and ART, Foolbox and torchattacks.

Each attack adapter takes the toolkit's own attack object and returns adversarial inputs
with the type, shape, dtype and device of the input, within the clip range, leaving the
input untouched and the model's train/eval mode as it was. Foolbox and torchattacks are
optional extras, imported only when their adapter is used.
"""

from rce_art.adapters.art import TorchView, make_art_classifier, resolve_model, with_model
from rce_art.adapters.art_attack import ARTAttack
from rce_art.adapters.foolbox_attack import FoolboxAttack
from rce_art.adapters.torchattacks_attack import TorchattacksAttack

__all__ = [
    "ARTAttack",
    "FoolboxAttack",
    "TorchView",
    "TorchattacksAttack",
    "make_art_classifier",
    "resolve_model",
    "with_model",
]
