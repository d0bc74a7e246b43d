"""Reverse logits (Pang et al. 2018, Section 3.2)."""

from __future__ import annotations

from torch import Tensor, nn

from rce_art.models.features import as_feature_model

__all__ = ["ReverseLogits"]


class ReverseLogits(nn.Module):
    """Negate the logits of an RCE-trained network: ``forward(x) = -Z(x)``.

    A network trained with reverse cross-entropy is a *reverse* classifier (lowest
    probability on the true class). Negating its logits, ``F_R(x) = softmax(-Z(x))``,
    turns it into an ordinary classifier, so ART, Foolbox and torchattacks can use it
    as any other model. Features (the final hidden layer) are passed through unchanged.

    Args:
        model: The RCE-trained network producing raw logits ``Z``.
        layer: Feature layer name for models without ``logits_and_features`` (see
            [`rce_art.models.FeatureTap`][rce_art.models.FeatureTap]).

    Shape:
        - input: ``(N, ...)``; output: ``(N, L)`` reversed logits.

    References:
        Pang et al., Towards Robust Detection of Adversarial Examples, NeurIPS 2018, Section 3.2.
    """

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        super().__init__()
        self.model = as_feature_model(model, layer)
        self.train(model.training)  # adopt the wrapped model's mode instead of nn.Module's default

    def forward(self, x: Tensor) -> Tensor:
        return -self.model(x)

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(-Z (N, L), features (N, D))`` from one forward pass."""
        logits, features = self.model.logits_and_features(x)
        return -logits, features
