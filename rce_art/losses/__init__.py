"""Training objectives."""

from rce_art.losses.pdm import ReduceVarianceLoss, SiameseCosineLoss, reduce_variance_loss, siamese_cosine_loss
from rce_art.losses.rce import ReverseCrossEntropyLoss, reverse_cross_entropy, reverse_labels

__all__ = [
    "ReduceVarianceLoss",
    "ReverseCrossEntropyLoss",
    "SiameseCosineLoss",
    "reduce_variance_loss",
    "reverse_cross_entropy",
    "reverse_labels",
    "siamese_cosine_loss",
]
