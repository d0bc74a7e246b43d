"""Training objectives."""

from rce_art.losses.composed import ComposedObjective, LogitSqueezingLoss, OutputVarianceLoss, RCESmoothingLoss
from rce_art.losses.er import critic_objective, encoder_prior_objective, trades_loss
from rce_art.losses.pdm import ReduceVarianceLoss, SiameseCosineLoss, reduce_variance_loss, siamese_cosine_loss
from rce_art.losses.rce import ReverseCrossEntropyLoss, reverse_cross_entropy, reverse_labels
from rce_art.losses.regularized import (
    label_smoothing_cross_entropy,
    logit_squeezing,
    output_variance,
    output_variance_loss,
    rce_smoothing_loss,
)

__all__ = [
    "ComposedObjective",
    "LogitSqueezingLoss",
    "OutputVarianceLoss",
    "RCESmoothingLoss",
    "ReduceVarianceLoss",
    "ReverseCrossEntropyLoss",
    "SiameseCosineLoss",
    "critic_objective",
    "encoder_prior_objective",
    "label_smoothing_cross_entropy",
    "logit_squeezing",
    "output_variance",
    "output_variance_loss",
    "rce_smoothing_loss",
    "reduce_variance_loss",
    "reverse_cross_entropy",
    "reverse_labels",
    "siamese_cosine_loss",
    "trades_loss",
]
