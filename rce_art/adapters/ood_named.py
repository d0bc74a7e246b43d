"""pytorch-ood detectors by name (``"ood:energy"``, ``"ood:vim"``, ...) for [`evaluate`][rce_art.evaluate] and the
``rce-art evaluate --detectors`` option, with the settings they are built with."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rce_art._tensors import eval_mode
from rce_art.adapters.ood import OODDetector
from rce_art.adapters.ood_detectors import pytorch_ood_detector_module
from rce_art.models.estimator import resolve_model
from rce_art.models.features import as_feature_model, logits_and_features

__all__ = ["OOD_ALIASES", "OOD_PREFIX", "build_ood_detector", "linear_head"]

OOD_PREFIX = "ood:"
"""Names beginning with it are pytorch-ood detectors: an alias below, or any class of ``pytorch_ood.detector`` that
scores logits or features and is built from its model alone (e.g. ``"ood:Entropy"``)."""
OOD_ALIASES = {"msp": "MaxSoftmax", "energy": "EnergyBased", "maxlogit": "MaxLogit", "mahalanobis": "Mahalanobis",
               "vim": "ViM", "knn": "KNN"}
"""Short names: maximum softmax probability (Hendrycks & Gimpel 2017), energy (Liu et al. 2020), max logit
(Hendrycks et al. 2022), Mahalanobis on the final features (Lee et al. 2018), ViM (Wang et al. 2022), KNN (Sun et al.
2022)."""
KNN_K = 50
"""KNN's ``k`` (pytorch-ood's default; Sun et al.'s choice for CIFAR-10)."""


def linear_head(classifier: Any, x: np.ndarray, layer: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w (C, D), b (C,))`` with ``logits = features @ w.T + b`` on ``x``, solved by least squares from one pass.

    ViM needs the last layer's weights in the frame of the features rce-art reads; solving for them from the logits
    covers wrapped models (e.g. RCE's reversed logits) without reading any attribute of the network.

    Raises:
        ValueError: If ``x`` has fewer rows than features + 1, or the logits are not a linear function of the features
            (relative residual above 1e-4).
    """
    view = resolve_model(classifier)
    model = as_feature_model(view.model, layer)
    with torch.no_grad(), eval_mode(model):
        logits, feats = logits_and_features(model, view.preprocess(torch.as_tensor(x, device=view.device)))
    n, d = feats.shape
    if n < d + 1:
        raise ValueError(f"ViM's last layer is solved from the fit inputs: need at least {d + 1} of them, got {n}")
    a = torch.cat([feats.double(), torch.ones(n, 1, dtype=torch.float64, device=feats.device)], 1)
    sol = torch.linalg.lstsq(a.cpu(), logits.double().cpu()).solution
    resid = float((a.cpu() @ sol - logits.double().cpu()).abs().max())
    if resid > 1e-4 * (1.0 + float(logits.abs().max())):
        raise ValueError(f"the classifier's logits are not a linear function of its final features (residual "
                         f"{resid:.3g}): ViM needs a linear last layer; pass layer= to read the input of that layer")
    return sol[:-1].T.float().contiguous(), sol[-1].float().contiguous()


def build_ood_detector(name: str, classifier: Any, x_fit: np.ndarray, seed: int = 0) -> OODDetector:
    """The unfitted [`OODDetector`][rce_art.adapters.OODDetector] called ``name`` on ``classifier``.

    Settings (ours where the method leaves them open): temperature 1 for MSP and energy; KNN with ``k`` =
    [`KNN_K`][] on unit-length features; ViM with its last layer from [`linear_head`][] on up to 2,000 rows of ``x_fit``
    and ``d`` = half the feature dimension (Wang et al. use 512-1000 of 768-2048).

    Raises:
        ImportError: Without pytorch-ood.
        ValueError: On a name that is not an alias or a pytorch-ood detector class.
    """
    mod = pytorch_ood_detector_module()
    key = name.removeprefix(OOD_PREFIX)
    cls_name = OOD_ALIASES.get(key.lower(), key)
    cls = getattr(mod, cls_name, None)
    if not name.startswith(OOD_PREFIX) or not isinstance(cls, type):
        raise ValueError(f"unknown pytorch-ood detector {name!r}; use {OOD_PREFIX}<alias> with an alias among "
                         f"{sorted(OOD_ALIASES)} or {OOD_PREFIX}<class of pytorch_ood.detector>")
    if cls_name == "KNN":
        ood = cls(None, k=KNN_K)
    elif cls_name == "ViM":
        w, b = linear_head(classifier, np.asarray(x_fit, np.float32)[:2000])
        ood = cls(None, d=max(1, w.shape[1] // 2), w=w, b=b)
    else:
        try:
            ood = cls(None)
        except TypeError as e:
            raise ValueError(f"pytorch-ood's {cls_name} needs more than its model to be built ({e}); build it "
                             "yourself and pass OODDetector(classifier, detector) to evaluate") from e
    return OODDetector(classifier, ood, seed=seed)
