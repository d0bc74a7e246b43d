"""What rce-art's batch attacks (APGD, Square) attack: a classifier + detector system, or a plain classifier (private).

Both reduce to one function ``logits(x, labels) -> (N, L)`` whose ``argmax != labels`` is the attack's success:
the system folded per row ([`fold_rows`][rce_art.attacks.fold_rows]), or the classifier's logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rce_art._validation import check_labels
from rce_art.attacks.detector_class import DetectorAsClass

__all__ = ["AttackTarget", "attack_target", "batch_tensors"]


@dataclass
class AttackTarget:
    """A model reduced to what a batch attack needs.

    Attributes:
        logits: ``(x, labels) -> (N, L)`` logits; success is ``argmax != labels``.
        clip: Pixel range.
        device: Where the model runs.
        module: The module put in eval mode during the attack.
        nb_classes: ``L``.
    """

    logits: Callable[[Tensor, Tensor], Tensor]
    clip: tuple[float, float]
    device: torch.device
    module: nn.Module
    nb_classes: int


def attack_target(target: object, clip_values: tuple[float, float] | None = None) -> AttackTarget:
    """Reduce ``target`` to an [`AttackTarget`][].

    Args:
        target: A [`DetectorAsClass`][rce_art.attacks.DetectorAsClass] (classifier + detector at one threshold), a
            fitted detector (attacked with its classifier at its own ``threshold_``), or a plain ``nn.Module``
            returning logits on raw inputs (no detector; ``clip_values`` required).
        clip_values: Pixel range for a plain module (systems and detectors take their classifier's).

    Raises:
        TypeError: On anything else.
        ValueError: Without a pixel range.
    """
    if isinstance(target, DetectorAsClass):
        system = target
    elif callable(getattr(target, "logits_and_score", None)) and hasattr(target, "threshold_"):
        system = DetectorAsClass(target)
    elif isinstance(target, nn.Module):
        if clip_values is None:
            raise ValueError("attacking a plain classifier module needs clip_values=(low, high), its pixel range")
        param = next(target.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        n = _out_features(target)
        return AttackTarget(lambda x, y: target(x), (float(clip_values[0]), float(clip_values[1])), device, target, n)
    else:
        raise TypeError(f"expected a DetectorAsClass system, a fitted detector or a classifier nn.Module, got "
                        f"{type(target).__name__}")
    clip = system.clip_values
    if clip is None:
        raise ValueError("the detector's classifier needs clip_values (use rce_art.make_art_classifier)")
    if system.fold_into is not None:
        return AttackTarget(lambda x, y: system(x), clip, system.device, system, system.nb_classes)
    return AttackTarget(system.folded_logits, clip, system.device, system, system.nb_classes)


def batch_tensors(t: AttackTarget, x: object, y: object) -> tuple[Tensor, Tensor]:
    """``x`` as float32 and ``y`` as checked labels, both on the target's device.

    Raises:
        ValueError: On labels of the wrong length or outside the target's classes.
    """
    xt = torch.as_tensor(x, dtype=torch.float32).to(t.device)
    n_classes = t.nb_classes or int(torch.as_tensor(y).max()) + 1  # a plain module of unknown width
    return xt, torch.as_tensor(check_labels(y, xt.shape[0], n_classes)).to(t.device)


def _out_features(module: nn.Module) -> int:
    """Number of logits of a plain classifier (its last linear layer's outputs); 0 if unknown (checked at run)."""
    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return int(last[-1].out_features) if last else 0
