"""Training objectives."""

from rce_art.losses.rce import ReverseCrossEntropyLoss, reverse_cross_entropy, reverse_labels

__all__ = ["ReverseCrossEntropyLoss", "reverse_cross_entropy", "reverse_labels"]
