"""Feinman et al.'s combined detector: K-density and Bayesian uncertainty, z-scored, by logistic regression."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rce_art._validation import check_integer
from rce_art.detectors.characteristics import CombinedDetector
from rce_art.detectors.kdensity import KDensityDetector
from rce_art.detectors.kernel import class_log_kdensity
from rce_art.detectors.uncertainty import dropout_modules, mc_dropout_uncertainty

__all__ = ["KDBUDetector"]


class KDBUDetector(CombinedDetector):
    """KD + BU (Feinman et al. 2017, Section 4.3): characteristics ``[log KD(x), U(x)]``, logistic regression.

    The kernel density is the [`KDensityDetector`][rce_art.KDensityDetector]'s (same bandwidth choices), the uncertainty
    [`mc_dropout_uncertainty`][rce_art.detectors.uncertainty.mc_dropout_uncertainty]. The regression is trained on clean + noisy
    negatives (noise matched to the attack's mean L2 distortion) vs adversarial examples of one attack, with
    z-scoring statistics of those rows only, and scored on other rows (Feinman et al.'s code fits and scores
    the same rows). Score: ``-logit`` (higher = more normal). A model without dropout gets a clear error.

    Args:
        classifier: ART ``PyTorchClassifier`` or ``nn.Module`` with dropout layers.
        bandwidth: As in [`KDensityDetector`][rce_art.KDensityDetector] (``"auto"``, ``"paper-rce"``, ``"paper-ce"`` or sigma).
        n_per_class: Kernel points per class (Feinman et al.: all; the paper's code: 1000).
        mc_samples: MC-dropout passes (paper: 50).
        layer: Feature layer name for models without ``logits_and_features``.
        fpr: Target false-positive rate of the threshold.
        calibration_fraction: Share of ``fit``'s inputs held out for the threshold without ``x_calibration``.
        batch_size: Inputs per forward pass (each repeated ``mc_samples`` times after the first dropout layer).
        seed: Seed of the kernel sampling, the dropout masks, the noise and the splits.
        verbose: Progress bar.

    References:
        R. Feinman, R. Curtin, S. Shintre, A. Gardner. Detecting Adversarial Samples from Artifacts.
        arXiv:1703.00410, 2017, Sections 4.1-4.3.
    """

    format_tag = "rce_art.KDBUDetector/2"
    report_key = "neg_logit"
    stochastic = True

    def __init__(self, classifier: Any, bandwidth: float | str = "auto", n_per_class: int | None = 1000,
                 mc_samples: int = 50, layer: str | None = None, fpr: float = 0.05, calibration_fraction: float = 0.2,
                 batch_size: int = 64, seed: int = 0, verbose: bool = False) -> None:
        super().__init__(classifier, layer=layer, fpr=fpr, batch_size=batch_size, verbose=verbose)
        self.bandwidth, self.n_per_class, self.mc_samples = bandwidth, n_per_class, mc_samples
        self.calibration_fraction, self.seed = calibration_fraction, seed
        self._check_params()
        self._bind()

    def _kd(self, bandwidth: float | str | None = None) -> KDensityDetector:
        """The K-density part; ``bandwidth`` overrides the constructor's (a loaded sigma: no new selection)."""
        return KDensityDetector(self.classifier, bandwidth=self.bandwidth if bandwidth is None else bandwidth,
                                n_per_class=self.n_per_class,
                                layer=self.layer, calibration_fraction=self.calibration_fraction,
                                batch_size=self.batch_size, seed=self.seed)

    def _check_params(self) -> None:
        super()._check_params()
        self._kd()._check_params()
        check_integer(self.mc_samples, "mc_samples", 2)

    def characteristics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xp = self.view.preprocess(x)
        logits, feats = self.model.logits_and_features(xp)
        kd = class_log_kdensity(feats, logits.detach().argmax(1), self.bank_, self.bandwidth_)
        u = mc_dropout_uncertainty(self.model, xp, int(self.mc_samples), self.seed, self._eot_draw)
        return logits, torch.stack([kd, u.to(kd.dtype)], dim=1)

    def _fit_unsupervised(self, x: np.ndarray, y: np.ndarray, batch_size: int | None) -> None:
        if not dropout_modules(self.model):
            raise ValueError("KD+BU needs MC-dropout uncertainty and the model has no dropout layer: train a model "
                             "with dropout (e.g. rce_art.SmallCNN(dropout=0.5)), or use KDensityDetector alone")
        kd = self._kd()
        rng = np.random.default_rng(self.seed)
        idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: self.n_per_class] for c in range(self.nb_classes_)])
        logits, feats = kd.extract(x[idx], batch_size)
        kd.check_reverse_network(logits, torch.as_tensor(y[idx]))
        kd.fit_features(feats, torch.as_tensor(y[idx]), nb_classes=self.nb_classes_)
        self.bank_, self.bandwidth_ = kd.kernel_bank, kd.bandwidth_
        self.features_, self.labels_ = kd.features_, kd.labels_

    def _unsupervised_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        return {"bandwidth_": self.bandwidth_}, {"features_": self.features_, "labels_": self.labels_}

    def _restore_unsupervised(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        kd = self._kd(bandwidth=float(meta["bandwidth_"]))  # the saved sigma: no bandwidth selection on load
        kd.fit_features(tensors["features_"].to(self.device), tensors["labels_"], nb_classes=self.nb_classes_)
        self.bank_, self.features_, self.labels_ = kd.kernel_bank, kd.features_, kd.labels_
        self.bandwidth_ = kd.bandwidth_

