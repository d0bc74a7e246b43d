"""Adapter for ART evasion attacks."""

from __future__ import annotations

from typing import Any

from rce_art._tensors import as_input_tensor, as_label_tensor, eval_mode, like

__all__ = ["ARTAttack"]


class ARTAttack:
    """Run an ART ``EvasionAttack`` on arrays or tensors.

    The attack is configured with ART's own parameters; this adapter only converts types,
    keeps the input untouched, clips to the estimator's ``clip_values`` and restores the
    model's train/eval mode.

    Args:
        attack: An ``art.attacks.EvasionAttack`` whose estimator is a ``PyTorchClassifier``.

    Example:
        >>> from art.attacks.evasion import FastGradientMethod
        >>> x_adv = ARTAttack(FastGradientMethod(classifier, eps=0.1)).generate(x)  # doctest: +SKIP
    """

    def __init__(self, attack: Any) -> None:
        from art.attacks import EvasionAttack

        if not isinstance(attack, EvasionAttack):
            raise TypeError(f"expected an art.attacks.EvasionAttack, got {type(attack).__name__}")
        self.attack = attack

    def generate(self, x: Any, y: Any = None) -> Any:
        """Craft adversarial inputs.

        Args:
            x: Inputs ``(N, ...)``, numpy or torch, within the estimator's clip values (never modified).
            y: Labels ``(N,)`` or one-hot, or target labels for a targeted attack; ``None`` lets
                ART use the model's predictions (no label leaking).

        Returns:
            Adversarial inputs with the type, shape, dtype and device of ``x``, within the clip values.
        """
        est = self.attack.estimator
        clip = None if est.clip_values is None else (float(est.clip_values[0]), float(est.clip_values[1]))
        xt = as_input_tensor(x, est.device, clip)
        yt = as_label_tensor(y, xt.shape[0], est.device)
        y_np = None if yt is None else _one_hot(yt.cpu().numpy(), est.nb_classes)
        with eval_mode(est.model):
            x_adv = self.attack.generate(xt.cpu().numpy(), y=y_np)
        return like(x_adv, x, clip)

    def __repr__(self) -> str:
        return f"ARTAttack({type(self.attack).__name__})"


def _one_hot(y: Any, n: int) -> Any:
    import numpy as np

    out = np.zeros((y.shape[0], n), dtype=np.float32)
    out[np.arange(y.shape[0]), y] = 1.0
    return out
