"""Trainers (ART ``Trainer`` subclasses) on one plain torch loop."""

from rce_art.training.er import ERTrainer
from rce_art.training.loop import TrainHistory, cosine_lr, piecewise_lr, train_model
from rce_art.training.objective import ObjectiveTrainer
from rce_art.training.pdm import PartnerSampler, PDMTrainer
from rce_art.training.pgd import linf_pgd
from rce_art.training.trainers import CETrainer, RCETrainer, TorchTrainer

__all__ = [
    "CETrainer",
    "ERTrainer",
    "ObjectiveTrainer",
    "PDMTrainer",
    "PartnerSampler",
    "RCETrainer",
    "TorchTrainer",
    "TrainHistory",
    "cosine_lr",
    "linf_pgd",
    "piecewise_lr",
    "train_model",
]
