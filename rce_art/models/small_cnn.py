"""A small CNN that trains on scikit-learn's 8x8 digits in seconds on a CPU."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["SmallCNN"]


class SmallCNN(nn.Module):
    """Three 3x3 convolutions with batch norm, adaptive pooling, a hidden layer and a linear output.

    Works for any number of channels and any input size >= 2x2. Inputs of side >= 16
    (MNIST, CIFAR-10) are max-pooled once more after the first convolution, which
    keeps a training epoch on 60,000 28x28 images to about a minute on 2 CPU cores.
    The final hidden layer (the input of `fc`) has ``hidden_dim`` units. Batch norm matters for
    RCE: without it, reverse cross-entropy stalls near the uniform output on digits.

    Args:
        in_channels: Input channels (1 for grey-scale, 3 for colour).
        num_classes: Number of classes.
        hidden_dim: Size of the final hidden layer.
        width: Channels of the first convolution (the others use ``2 * width``).
        dropout: Dropout rate before the output layer (0: none, no module). Needed by MC-dropout
            detectors such as [`BayesianUncertaintyDetector`][rce_art.detectors.BayesianUncertaintyDetector] (Feinman et al. use 0.5).

    Shape:
        - input: ``(N, in_channels, H, W)``; output: ``(N, num_classes)`` logits.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, hidden_dim: int = 64, width: int = 32,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.body = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * width, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(),
        )
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(hidden_dim, num_classes)

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(logits (N, L), final hidden features (N, hidden_dim))``."""
        h = self.stem(x)
        if min(x.shape[-2:]) >= 16:
            h = self.pool(h)
        features = self.body(h)
        return self.fc(self.drop(features)), features

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_and_features(x)[0]
