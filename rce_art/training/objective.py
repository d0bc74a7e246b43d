"""One trainer for any per-batch objective of the logits: the report's composed objectives and the like."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from rce_art.losses.composed import ComposedObjective
from rce_art.training.trainers import TorchTrainer

__all__ = ["ObjectiveTrainer"]


class ObjectiveTrainer(TorchTrainer):
    """Train on ``objective(logits, y)``: label smoothing toward RCE, logit squeezing, OVM and any mix.

    One trainer for every combination (Lemesle & Vernade's eq. 3 grid, OVM, standard label smoothing):
    pass a [`ComposedObjective`][rce_art.losses.ComposedObjective] or any callable of one batch's raw logits and labels.

    Example:
        >>> from rce_art.losses import ComposedObjective
        >>> trainer = ObjectiveTrainer(classifier, ComposedObjective(output_variance=1.0))  # doctest: +SKIP

    Args:
        classifier: ART ``PyTorchClassifier`` around the network, or the module (see [`TorchTrainer`][]).
        objective: ``objective(logits (N, L), y (N,)) -> scalar`` on raw logits; default
            ``ComposedObjective()``, i.e. plain cross-entropy.
        reverse: The objective trains a *reverse* classifier (RCE-like: lowest probability on the true
            class); `get_model` then wraps the network in [`ReverseLogits`][rce_art.models.ReverseLogits].
        **kwargs: Loop settings of [`TorchTrainer`][] (``epochs``, ``lr``, ``weight_decay``,
            ``schedule``, ``augment``, ...).

    Raises:
        TypeError: If ``objective`` is not callable.
    """

    def __init__(
        self,
        classifier: Any,
        objective: Callable[[Tensor, Tensor], Tensor] | None = None,
        *,
        reverse: bool = False,
        **kwargs: Any,
    ) -> None:
        objective = ComposedObjective() if objective is None else objective
        if not callable(objective):
            raise TypeError(f"objective must be callable as objective(logits, y), got {type(objective).__name__}")
        super().__init__(classifier, **kwargs)
        self.objective, self.reverse = objective, bool(reverse)

    def _train(self, data: Any) -> Any:
        lam = getattr(self.objective, "rce_smoothing", None)
        n = self._nb_classes
        if lam is not None and n is not None and (lam > n - 1) != self.reverse and lam != n - 1:
            warnings.warn(
                f"rce_smoothing={lam:g} with {n} classes trains a {'reverse' if lam > n - 1 else 'ordinary'} "
                f"classifier (predictions flip at rce_smoothing = L - 1 = {n - 1}); "
                f"pass reverse={lam > n - 1} to get ordinary predictions", UserWarning, stacklevel=3)
        return super()._train(data)

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return self.objective(logits, y)

    def get_model(self) -> nn.Module:
        return self._reversed_model() if self.reverse else self._view.model
