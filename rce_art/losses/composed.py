"""Module forms of the regularised cross-entropies and the composed objective the trainers take."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from rce_art._validation import check_logits_and_labels, check_nonnegative
from rce_art.losses.rce import reverse_cross_entropy
from rce_art.losses.regularized import (
    logit_squeezing,
    output_variance,
    output_variance_loss,
    rce_smoothing_loss,
)

__all__ = ["ComposedObjective", "LogitSqueezingLoss", "OutputVarianceLoss", "RCESmoothingLoss"]


class RCESmoothingLoss(nn.Module):
    """Module form of [`rce_smoothing_loss`][rce_art.losses.rce_smoothing_loss]: ``CE - weight * R_y^T log F``.

    Args:
        weight: ``lambda >= 0``; 0 is CE.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - logits: ``(N, L)`` raw logits; y: ``(N,)`` integer labels.
        - output: scalar, or ``(N,)`` with ``reduction="none"``.
    """

    def __init__(self, weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.weight, self.reduction = check_nonnegative(weight, "weight"), reduction

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        return rce_smoothing_loss(logits, y, self.weight, self.reduction)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, reduction={self.reduction!r}"


class LogitSqueezingLoss(nn.Module):
    """Module form of [`logit_squeezing`][rce_art.losses.logit_squeezing] (the penalty alone; ``y`` is ignored).

    Args:
        squared: Penalise the squared norm.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - logits: ``(N, L)``; output: scalar, or ``(N,)`` with ``reduction="none"``.
    """

    def __init__(self, squared: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        self.squared, self.reduction = bool(squared), reduction

    def forward(self, logits: Tensor, y: Tensor | None = None) -> Tensor:
        return logit_squeezing(logits, self.squared, self.reduction)

    def extra_repr(self) -> str:
        return f"squared={self.squared}, reduction={self.reduction!r}"


class OutputVarianceLoss(nn.Module):
    """Module form of [`output_variance_loss`][rce_art.losses.output_variance_loss]: ``CE + weight * output_variance``.

    Args:
        weight: ``lambda >= 0`` (1 in the report).

    Shape:
        - logits: ``(N, L)`` raw logits of one batch; y: ``(N,)``; output: scalar.
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = check_nonnegative(weight, "weight")

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        return output_variance_loss(logits, y, self.weight)

    def extra_repr(self) -> str:
        return f"weight={self.weight}"


class ComposedObjective(nn.Module):
    """Cross-entropy plus any weighted mix of the report's regularisers (Lemesle & Vernade, eq. 3 generalised).

    ``J = CE_eps(x, y) - rce_smoothing * R_y^T log F(x) + logit_squeezing * ||Z(x)||_2
    + output_variance * OVM-term``, where ``CE_eps`` is CE with standard label smoothing ``eps``
    (``label_smoothing``, 0 by default). Terms with weight 0 are skipped, so the default is CE exactly
    (the grid's corner ``lambda_1 = lambda_2 = 0`` trains the CE model bit for bit).

    Args:
        rce_smoothing: ``lambda_1`` of eq. 3, label smoothing toward RCE (the report's "label smoothing").
        logit_squeezing: ``lambda_2`` of eq. 3.
        output_variance: OVM weight (1 in the report's OVM model).
        label_smoothing: Standard (Szegedy) label smoothing of the CE term, in ``[0, 1]``.
        squeeze_squared: Squared logit norm instead of the report's unsquared one.

    Shape:
        - logits: ``(N, L)`` raw logits of one batch; y: ``(N,)`` integer labels; output: scalar.

    Raises:
        ValueError: On a negative weight or ``label_smoothing`` outside ``[0, 1]``.
    """

    def __init__(
        self,
        rce_smoothing: float = 0.0,
        logit_squeezing: float = 0.0,
        output_variance: float = 0.0,
        label_smoothing: float = 0.0,
        squeeze_squared: bool = False,
    ) -> None:
        super().__init__()
        self.rce_smoothing = check_nonnegative(rce_smoothing, "rce_smoothing")
        self.logit_squeezing = check_nonnegative(logit_squeezing, "logit_squeezing")
        self.output_variance = check_nonnegative(output_variance, "output_variance")
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.squeeze_squared = bool(squeeze_squared)

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        check_logits_and_labels(logits, y)
        loss = F.cross_entropy(logits, y.long(), label_smoothing=self.label_smoothing)
        if self.rce_smoothing:
            loss = loss + self.rce_smoothing * reverse_cross_entropy(logits, y)
        if self.logit_squeezing:
            loss = loss + self.logit_squeezing * logit_squeezing(logits, self.squeeze_squared)
        if self.output_variance:
            loss = loss + self.output_variance * output_variance(logits, y)
        return loss

    def settings(self) -> dict[str, Any]:
        """The weights, as printed next to results."""
        return {"rce_smoothing": self.rce_smoothing, "logit_squeezing": self.logit_squeezing,
                "output_variance": self.output_variance, "label_smoothing": self.label_smoothing,
                "squeeze_squared": self.squeeze_squared}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings().items())
