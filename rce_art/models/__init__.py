"""Models that give logits and final hidden features in one forward pass, and views of ART estimators."""

from rce_art.models.er import Critic, ERClassifier
from rce_art.models.estimator import Preprocessed, TorchView, make_art_classifier, resolve_model, with_model
from rce_art.models.features import FeatureModel, FeatureTap, as_feature_model, logits_and_features, output_layer
from rce_art.models.resnet import PreActResNet, resnet32, resnet56
from rce_art.models.reverse import ReverseLogits
from rce_art.models.small_cnn import SmallCNN

__all__ = [
    "Critic",
    "ERClassifier",
    "FeatureModel",
    "FeatureTap",
    "PreActResNet",
    "Preprocessed",
    "ReverseLogits",
    "SmallCNN",
    "TorchView",
    "as_feature_model",
    "logits_and_features",
    "make_art_classifier",
    "output_layer",
    "resnet32",
    "resnet56",
    "resolve_model",
    "with_model",
]
