"""Bayesian uncertainty by MC dropout (Feinman et al. 2017, Section 4.1), batched."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rce_art.detectors.combined import CombinedDetector

__all__ = ["BayesianUncertaintyDetector", "dropout_modules", "mc_dropout_uncertainty"]

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The dropout layers of ``model`` (those with a positive rate)."""
    return [m for m in model.modules() if isinstance(m, _DROPOUT) and m.p > 0]


def mc_dropout_uncertainty(model: nn.Module, x: Tensor, samples: int, seed: int = 0) -> Tensor:
    """Feinman et al.'s uncertainty ``U(x) = (1/T) sum_t y_t^T y_t - ybar^T ybar``, divided by the number of classes.

    ``y_t`` are the softmax outputs of ``T = samples`` stochastic passes with dropout on (only the dropout
    layers are put in train mode; batch norm stays in eval mode). All passes run in one forward call: the
    layers before the first dropout layer are deterministic, so they run once and their output is repeated
    ``T`` times at the first dropout layer (a pre-hook, removed after); a model whose dropout output is later
    combined with tensors computed before it (a skip connection around dropout) falls back to repeating the
    input. Equals the mean over classes of the (biased) variance across passes, as Feinman et al.'s code
    computes it; the constant factor is immaterial after z-scoring or thresholding. Differentiable in ``x``
    (for an attack: an expectation over dropout masks). Dropout draws come from torch's generator seeded with
    ``seed`` inside ``torch.random.fork_rng``: the same input gets the same score and the caller's random
    stream is untouched.

    Args:
        model: Module with ``logits_and_features`` whose dropout layers are sampled.
        x: Preprocessed inputs ``(N, ...)``.
        samples: ``T`` (paper: 50).

    Returns:
        ``(N,)``, ``>= 0``.
    """
    drops = dropout_modules(model)
    modes = [d.training for d in drops]
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    state = {"repeated": False}

    def repeat_once(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
        if state["repeated"]:
            return None
        state["repeated"] = True
        return (args[0].repeat(samples, *([1] * (args[0].ndim - 1))), *args[1:])

    def run(xin: Tensor, hook: bool) -> Tensor:
        handles = [d.register_forward_pre_hook(repeat_once) for d in drops] if hook else []
        state["repeated"] = False
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                return model.logits_and_features(xin)[0]
        finally:
            for h in handles:
                h.remove()

    try:
        for d in drops:
            d.train()
        try:
            logits = run(x, hook=True)
            if logits.shape[0] != samples * x.shape[0]:
                raise RuntimeError("dropout output did not reach the logits")
        except RuntimeError:
            logits = run(x.repeat(samples, *([1] * (x.ndim - 1))), hook=False)
    finally:
        for d, m in zip(drops, modes):
            d.train(m)
    p = logits.softmax(1).view(samples, x.shape[0], -1)
    return p.var(0, unbiased=False).mean(1)


class BayesianUncertaintyDetector(CombinedDetector):
    """Flag inputs with a high MC-dropout uncertainty; score ``-U(x)`` (higher = more normal).

    Nothing is learned but the threshold, calibrated on held-out clean inputs. The model needs dropout
    layers (e.g. ``SmallCNN(dropout=0.5)``); a model without them gets a clear error at ``fit``.

    Args:
        classifier: ART ``PyTorchClassifier`` or ``nn.Module`` with dropout layers (ordinary logits).
        mc_samples: Stochastic passes ``T`` (Feinman et al.: 50).
        fpr: Target false-positive rate of the threshold.
        calibration_fraction: Fraction of ``fit``'s inputs used for the threshold when no ``x_calibration``.
        batch_size: Inputs per forward pass (each repeated ``mc_samples`` times).
        seed: Seed of the dropout masks and of the calibration split.
        verbose: Progress bar.

    References:
        R. Feinman, R. Curtin, S. Shintre, A. Gardner. Detecting Adversarial Samples from Artifacts.
        arXiv:1703.00410, 2017, Section 4.1 (Bayesian neural network uncertainty).
    """

    defence_params = ["classifier", "mc_samples", "fpr", "calibration_fraction", "batch_size", "seed", "verbose"]
    fit_params = ("classifier", "mc_samples", "calibration_fraction", "seed")
    format_tag = "rce_art.BayesianUncertaintyDetector/1"
    report_key = "neg_uncertainty"
    requires_combiner = False

    def __init__(self, classifier: Any, mc_samples: int = 50, fpr: float = 0.05, calibration_fraction: float = 0.2,
                 batch_size: int = 64, seed: int = 0, verbose: bool = False) -> None:
        super().__init__(classifier, layer=None, fpr=fpr, batch_size=batch_size, verbose=verbose)
        self.mc_samples, self.calibration_fraction, self.seed = mc_samples, calibration_fraction, seed
        self._check_params()
        self._bind()

    def _check_params(self) -> None:
        super()._check_params()
        if isinstance(self.mc_samples, bool) or int(self.mc_samples) != self.mc_samples or self.mc_samples < 2:
            raise ValueError(f"mc_samples must be an integer >= 2, got {self.mc_samples!r}")

    def characteristics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xp = self.view.preprocess(x)
        logits = self.model.logits_and_features(xp)[0]
        return logits, mc_dropout_uncertainty(self.model, xp, int(self.mc_samples), self.seed)[:, None]

    def _default_score(self, ch: Tensor) -> Tensor:
        return -ch[:, 0]

    def _fit_unsupervised(self, x: np.ndarray, y: np.ndarray, batch_size: int | None) -> None:
        if not dropout_modules(self.model):
            raise ValueError("the model has no dropout layer, so MC-dropout uncertainty is undefined: train a model "
                             "with dropout (e.g. rce_art.SmallCNN(dropout=0.5)) or use another detector")

    def _unsupervised_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        return {}, {}

    def _restore_unsupervised(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        pass
