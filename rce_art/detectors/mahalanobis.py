"""Mahalanobis detector (Lee et al., NeurIPS 2018): class-conditional Gaussians with a tied covariance per layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rce_art._tensors import eval_mode
from rce_art.detectors.characteristics import CombinedDetector
from rce_art.detectors.layers import LayerFeatures

__all__ = ["MahalanobisDetector", "class_gaussians", "mahalanobis_score"]


def class_gaussians(features: Tensor, labels: Tensor, nb_classes: int) -> tuple[Tensor, Tensor]:
    """Class means ``(C, D)`` and the precision ``(D, D)`` of the tied covariance, in float64.

    The covariance is the maximum-likelihood estimate of class-centred features,
    ``Sigma = (1/N) sum_c sum_{i in c} (f_i - mu_c)(f_i - mu_c)^T`` (scikit-learn's ``EmpiricalCovariance``
    on the centred features, as Lee et al.'s code); its pseudo-inverse is the precision.

    Raises:
        ValueError: If a class has no point.
    """
    f = features.detach().double()
    y = labels.to(f.device)
    counts = torch.bincount(y, minlength=nb_classes)
    if bool((counts == 0).any()):
        raise ValueError(f"classes {torch.nonzero(counts == 0).flatten().tolist()} have no fit points")
    means = torch.zeros(nb_classes, f.shape[1], dtype=f.dtype, device=f.device).index_add_(0, y, f) / counts[:, None]
    centred = f - means[y]
    cov = centred.T @ centred / f.shape[0]
    return means, torch.linalg.pinv(cov, hermitian=True)


def mahalanobis_score(features: Tensor, means: Tensor, precision: Tensor) -> Tensor:
    """Confidence score ``M(f) = max_c -(1/2) (f - mu_c)^T Sigma^{-1} (f - mu_c)`` (Lee et al., eq. 2), ``(N,)``."""
    f = features.to(means.dtype)
    diff = f[:, None, :] - means[None]  # (N, C, D)
    d = torch.einsum("ncd,de,nce->nc", diff, precision, diff)
    return (-0.5 * d).amax(1)


class MahalanobisDetector(CombinedDetector):
    """Mahalanobis confidence per layer (spatial means of feature maps), optionally with input pre-processing.

    Score: ``-logit`` of the logistic regression over the layer scores when a combiner is fitted
    (``x_adv`` / ``x_clean``; required with several layers), else the Mahalanobis confidence of the one layer;
    higher = more normal either way. With ``eps > 0`` each layer's input is first moved by ``eps`` along the sign of the
    gradient that raises that layer's confidence (Lee et al., eq. 4); the sign is treated as a constant in
    `score_tensor` (a straight-through approximation for adaptive attacks).

    Args:
        classifier: ART ``PyTorchClassifier`` or ``nn.Module`` (ordinary logits).
        layers: Layer names (``"features"`` = the final hidden layer, the default).
        eps: Input pre-processing step in pixel units (0: none; Lee et al. tune it in [0, 0.005] on [0, 1] pixels).
        fpr: Target false-positive rate of the threshold.
        calibration_fraction: Share of ``fit``'s inputs held out for the threshold without ``x_calibration``.
        batch_size: Inputs per forward pass.
        seed: Seed of the samples, the noise and the splits.
        verbose: Progress bar.

    References:
        K. Lee, K. Lee, H. Lee, J. Shin. A Simple Unified Framework for Detecting Out-of-Distribution Samples and
        Adversarial Attacks. NeurIPS 2018, Section 2.
    """

    format_tag = "rce_art.MahalanobisDetector/1"
    report_key = "score"

    def __init__(self, classifier: Any, layers: Sequence[str] = ("features",), eps: float = 0.0, fpr: float = 0.05,
                 calibration_fraction: float = 0.2, batch_size: int = 256, seed: int = 0, verbose: bool = False) -> None:
        super().__init__(classifier, layer=None, fpr=fpr, batch_size=batch_size, verbose=verbose)
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        self.eps, self.calibration_fraction, self.seed = eps, calibration_fraction, seed
        self._check_params()
        self._bind()

    def _check_params(self) -> None:
        super()._check_params()
        if not self.layers:
            raise ValueError("layers must name at least one layer")
        if not (isinstance(self.eps, (int, float)) and np.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {self.eps!r}")

    def _bind(self) -> None:
        super()._bind()
        self._tap = LayerFeatures(self.model, self.layers, reduce="spatial_mean")

    @property
    def needs_input_grad(self) -> bool:  # type: ignore[override]
        return self.eps > 0

    @property
    def requires_combiner(self) -> bool:  # type: ignore[override]
        """Several layers are combined by a logistic regression (fit needs ``x_adv`` / ``x_clean``); one layer's
        Mahalanobis confidence is a score by itself."""
        return len(self.layers) > 1

    def _layer_scores(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        logits, feats = self._tap(self.view.preprocess(x))
        return logits, [mahalanobis_score(f, m, p) for f, m, p in zip(feats, self.means_, self.precisions_)]

    def characteristics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.eps <= 0:
            logits, scores = self._layer_scores(x)
            return logits, torch.stack(scores, dim=1).to(logits.dtype)
        # input pre-processing (Lee et al., eq. 4): one forward at x, one backward per layer through it, then every
        # layer's moved input in one batched forward (rows i*N..(i+1)*N hold layer i's)
        lo, hi = self.clip_values if self.clip_values is not None else (-np.inf, np.inf)
        with torch.enable_grad():  # the pre-processing needs these gradients even when the caller scores under no_grad
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            logits, scores = self._layer_scores(xg)
            grads = [torch.autograd.grad(sc.sum(), xg, retain_graph=True)[0] for sc in scores]
        if not x.requires_grad:
            logits = logits.detach()
        n = x.shape[0]
        x_hat = torch.cat([(x + self.eps * g.sign()).clamp(lo, hi) for g in grads])  # sign: a constant (straight-through)
        moved = self._layer_scores(x_hat)[1]
        return logits, torch.stack([moved[i][i * n : (i + 1) * n] for i in range(len(grads))], dim=1).to(logits.dtype)

    def _default_score(self, ch: Tensor) -> Tensor:
        return ch[:, -1]

    def _fit_unsupervised(self, x: np.ndarray, y: np.ndarray, batch_size: int | None) -> None:
        bs = int(batch_size or self.batch_size)
        xt = torch.as_tensor(x, dtype=torch.float32)
        parts: list[list[Tensor]] = []
        with torch.no_grad(), eval_mode(self.model):
            for i in range(0, xt.shape[0], bs):
                parts.append([f.double() for f in self._tap(self.view.preprocess(xt[i : i + bs].to(self.device)))[1]])
        yt = torch.as_tensor(y).to(self.device)
        gauss = [class_gaussians(torch.cat([p[j] for p in parts]), yt, self.nb_classes_) for j in range(len(self.layers))]
        self.means_ = [g[0] for g in gauss]
        self.precisions_ = [g[1] for g in gauss]

    def _unsupervised_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        tensors = {f"means.{i}": m for i, m in enumerate(self.means_)}
        tensors.update({f"precision.{i}": p for i, p in enumerate(self.precisions_)})
        return {}, tensors

    def _restore_unsupervised(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        n = len(self.layers)
        self.means_ = [tensors[f"means.{i}"].to(self.device) for i in range(n)]
        self.precisions_ = [tensors[f"precision.{i}"].to(self.device) for i in range(n)]
