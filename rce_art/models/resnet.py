"""Pre-activation ResNet-32/56 as used by Pang et al. (2018) for MNIST and CIFAR-10.

Three stages of ``n`` pre-activation basic blocks with 16, 32 and 64 filters
(depth ``6n + 2``), leaky ReLU (slope 0.1), and global average pooling to a 64-d final
hidden layer. Works for 1- or 3-channel inputs of any size >= 8x8.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["PreActResNet", "resnet32", "resnet56"]


class _PreActBlock(nn.Module):
    """BN-LReLU-conv-BN-LReLU-conv with an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, slope: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.act1 = nn.LeakyReLU(slope)  # one module per call site: layer taps see every activation output
        self.act2 = nn.LeakyReLU(slope)
        self.shortcut = None if stride == 1 and c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + skip


class PreActResNet(nn.Module):
    """Pre-activation ResNet of depth ``6 * blocks_per_stage + 2``.

    Args:
        blocks_per_stage: Residual blocks per stage (5 for ResNet-32, 9 for ResNet-56).
        in_channels: 1 or 3.
        num_classes: Number of classes.
        widths: Filters of the three stages.
        leaky_slope: Slope of the leaky ReLU.

    Shape:
        - input: ``(N, in_channels, H, W)`` with ``H, W >= 8``; output: ``(N, num_classes)``.

    References:
        He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016.
        Pang et al. NeurIPS 2018, Section 4.1 and Appendix B.1.
    """

    def __init__(
        self,
        blocks_per_stage: int = 5,
        in_channels: int = 3,
        num_classes: int = 10,
        widths: tuple[int, int, int] = (16, 32, 64),
        leaky_slope: float = 0.1,
    ) -> None:
        super().__init__()
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be >= 1, got {blocks_per_stage}")
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        c_in = widths[0]
        for stage, c_out in enumerate(widths):
            for b in range(blocks_per_stage):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(_PreActBlock(c_in, c_out, stride, leaky_slope))
                c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c_in), nn.LeakyReLU(leaky_slope), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=leaky_slope, nonlinearity="leaky_relu")

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(logits (N, L), final hidden features (N, 64))``."""
        if x.ndim != 4 or x.shape[-1] < 8 or x.shape[-2] < 8:
            raise ValueError(f"PreActResNet expects (N, C, H, W) inputs with H, W >= 8, got {tuple(x.shape)}")
        features = self.head(self.blocks(self.stem(x)))
        return self.fc(features), features

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_and_features(x)[0]


def resnet32(in_channels: int = 3, num_classes: int = 10) -> PreActResNet:
    """The paper's ResNet-32 (5 blocks per stage)."""
    return PreActResNet(5, in_channels, num_classes)


def resnet56(in_channels: int = 3, num_classes: int = 10) -> PreActResNet:
    """The paper's ResNet-56 (9 blocks per stage)."""
    return PreActResNet(9, in_channels, num_classes)
