"""ER-Classifier's model (Li et al., Section 3.1): encoder Q to a k-dimensional code, classifier head C, critic D."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rce_art.models.small_cnn import SmallCNN

__all__ = ["Critic", "ERClassifier"]


class ERClassifier(nn.Module):
    """``x -> z = Q(x)`` (code of size ``k``) ``-> C(z)`` (logits); the critic lives outside (training only).

    ``logits_and_features(x)`` returns ``(C(Q(x)), Q(x))``: the code is the "final hidden layer", so every
    detector of the package works on the code (ER1 is K-density on it).

    Args:
        encoder: Module mapping inputs to ``(N, k)`` codes (``2k`` outputs when ``variational``).
        k: Code size.
        num_classes: Number of classes ``m``.
        head_hidden: Hidden width of the classifier head; 0 (default) for a linear head ``Linear(k, m)``
            (ours: the paper's architectures are in its missing appendix).
        variational: VAE encoder (the VAE-CLA ablation): the encoder outputs ``(mu, log_var)``; in training
            mode the code is sampled by reparameterisation and `last_kl` holds ``KL(q(z|x) || N(0, I))``
            per example; in eval mode the code is ``mu``.

    Shape:
        - input: ``(N, *input_shape)``; output: ``(N, num_classes)`` logits; code ``(N, k)``.
    """

    def __init__(self, encoder: nn.Module, k: int, num_classes: int, head_hidden: int = 0,
                 variational: bool = False) -> None:
        super().__init__()
        if k < 1 or num_classes < 2:
            raise ValueError(f"need k >= 1 and num_classes >= 2, got k={k}, num_classes={num_classes}")
        self.encoder, self.k, self.variational = encoder, int(k), bool(variational)
        self.head = (nn.Linear(k, num_classes) if head_hidden == 0 else
                     nn.Sequential(nn.Linear(k, head_hidden), nn.ReLU(), nn.Linear(head_hidden, num_classes)))
        self.last_kl: Tensor | None = None

    @classmethod
    def small(cls, in_channels: int, num_classes: int, k: int = 32, width: int = 32, **kwargs: object) -> ERClassifier:
        """A [`SmallCNN`][rce_art.SmallCNN] trunk whose output layer maps to the code (``2k`` if variational)."""
        out = 2 * k if kwargs.get("variational") else k
        return cls(SmallCNN(in_channels, out, width=width), k, num_classes, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def resnet(cls, in_channels: int, num_classes: int, k: int = 128, depth: int = 32, **kwargs: object) -> ERClassifier:
        """A pre-activation ResNet-``depth`` trunk (32 or 56; CIFAR-10) whose output layer maps to the code."""
        from rce_art.models.resnet import resnet32, resnet56

        if depth not in (32, 56):
            raise ValueError(f"depth must be 32 or 56, got {depth}")
        out = 2 * k if kwargs.get("variational") else k
        trunk = (resnet32 if depth == 32 else resnet56)(in_channels=in_channels, num_classes=out)
        return cls(trunk, k, num_classes, **kwargs)  # type: ignore[arg-type]

    def encode(self, x: Tensor) -> Tensor:
        """The code ``z = Q(x)``, ``(N, k)`` (sampled in training mode when variational)."""
        h = self.encoder(x)
        if not self.variational:
            return h
        mu, log_var = h[:, : self.k], h[:, self.k :].clamp(-20.0, 20.0)
        if not self.training:
            return mu
        self.last_kl = 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).sum(1)
        return mu + torch.randn_like(mu) * (0.5 * log_var).exp()

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits (N, m), code (N, k))``."""
        z = self.encode(x)
        return self.head(z), z

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encode(x))


class Critic(nn.Module):
    """WGAN critic ``D: z -> R`` on codes: an MLP ``k - hidden - hidden - 1`` with ReLU (ours; WGAN's shape).

    Args:
        k: Code size.
        hidden: Hidden width (default 512).
    """

    def __init__(self, k: int, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(1)

    @torch.no_grad()
    def clip_(self, c: float) -> None:
        """Clip every weight and bias to ``[-c, c]`` (WGAN's Lipschitz constraint, Algorithm 1 line 7)."""
        for p in self.parameters():
            p.clamp_(-c, c)
