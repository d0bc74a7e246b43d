"""Thin adapters between rce-art and ART, Foolbox and torchattacks."""

from rce_art.adapters.art import TorchView, make_art_classifier, resolve_model, with_model

__all__ = ["TorchView", "make_art_classifier", "resolve_model", "with_model"]
