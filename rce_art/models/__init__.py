"""Models that give logits and final hidden features in one forward pass."""

from rce_art.models.features import FeatureModel, FeatureTap, as_feature_model, logits_and_features
from rce_art.models.resnet import PreActResNet, resnet32, resnet56
from rce_art.models.reverse import ReverseLogits
from rce_art.models.small_cnn import SmallCNN

__all__ = [
    "FeatureModel",
    "FeatureTap",
    "PreActResNet",
    "ReverseLogits",
    "SmallCNN",
    "as_feature_model",
    "logits_and_features",
    "resnet32",
    "resnet56",
]
