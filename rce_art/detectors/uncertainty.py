"""Bayesian uncertainty by MC dropout (Feinman et al. 2017, Section 4.1), batched."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rce_art._validation import check_integer
from rce_art.detectors.characteristics import CombinedDetector

__all__ = ["BayesianUncertaintyDetector", "dropout_modules", "mc_dropout_uncertainty"]

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
_CHANNEL_WISE = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.FeatureAlphaDropout)
_ALPHA = (nn.AlphaDropout, nn.FeatureAlphaDropout)
_SELU_ALPHA = 1.7580993408473766  # -SELU's negative saturation, as torch's alpha dropout


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The dropout layers of ``model`` (those with a positive rate)."""
    return [m for m in model.modules() if isinstance(m, _DROPOUT) and m.p > 0]


def dropout_masks(module: nn.Module, shape: tuple[int, ...], samples: int, generator: torch.Generator) -> Tensor:
    """``samples`` keep-masks (float 0/1) of a dropout layer for inputs of per-example shape ``shape``.

    Element-wise dropout draws ``(T, 1, *shape)``; channel-wise dropout (``Dropout1d/2d/3d``,
    ``FeatureAlphaDropout``) draws ``(T, 1, C, 1, ...)``. The singleton second axis broadcasts one mask of
    pass ``t`` over every input of the batch (common random numbers).
    """
    per = (shape[0], *([1] * (len(shape) - 1))) if isinstance(module, _CHANNEL_WISE) and len(shape) > 1 else shape
    rate = float(module.p)  # type: ignore[arg-type]  # a dropout module's float rate
    return (torch.rand((samples, 1, *per), generator=generator) >= rate).float()


def _masked_dropout(module: nn.Module, x: Tensor, keep: Tensor) -> Tensor:
    """What ``module`` computes in train mode on ``x`` ``(T, N, ...)`` with the keep-mask ``keep`` (torch's rules)."""
    p = float(module.p)  # type: ignore[arg-type]  # a dropout module's float rate
    keep = keep.to(device=x.device, dtype=x.dtype)
    if isinstance(module, _ALPHA):
        a = 1.0 / ((_SELU_ALPHA**2 * p + 1.0) * (1.0 - p)) ** 0.5
        return x * (keep * a) + (keep - 1.0) * (_SELU_ALPHA * a) + _SELU_ALPHA * a * p
    return x * keep / (1.0 - p)


def mc_dropout_uncertainty(model: nn.Module, x: Tensor, samples: int, seed: int = 0, draw: int = 0) -> Tensor:
    """Feinman et al.'s uncertainty ``U(x) = (1/T) sum_t y_t^T y_t - ybar^T ybar``, divided by the number of classes.

    ``y_t`` are the softmax outputs of ``T = samples`` stochastic passes with dropout on (batch norm stays in
    eval mode). Common random numbers: the ``T`` dropout masks of each layer are drawn once per call from a
    generator seeded by ``(seed, draw, layer)`` and pass ``t`` applies mask ``t`` to *every* input, so ``U(x)`` is
    a function of ``x`` alone: the same in a batch of 1, 64 or 128, and the same masks that an attack with
    ``draw=0`` differentiates through are those ``detect`` scores with. Other ``draw`` values give independent
    mask sets (for expectation over transformation). The layers before the first dropout layer are
    deterministic, so all passes run in one forward call: the batch is repeated ``T`` times at the first dropout
    layer (a pre-hook); a model whose dropout output is later combined with tensors computed before it (a skip
    connection around dropout) falls back to repeating the input. Hooks are removed after the call and the
    caller's random streams are untouched. Equals the mean over classes of the (biased) variance across passes,
    as Feinman et al.'s code computes it; the constant factor is immaterial after z-scoring or thresholding.
    Differentiable in ``x``.

    Args:
        model: Module with ``logits_and_features`` whose dropout layers are sampled.
        x: Preprocessed inputs ``(N, ...)``.
        samples: ``T`` (paper: 50).
        seed: Seed of the masks.
        draw: Index of the mask set (0: the detector's own).

    Returns:
        ``(N,)``, ``>= 0``.

    References:
        R. Feinman, R. Curtin, S. Shintre, A. Gardner. Detecting Adversarial Samples from Artifacts.
        arXiv:1703.00410, 2017, Section 4.1.
    """
    drops = dropout_modules(model)
    modes = [d.training for d in drops]
    layer_seeds = np.random.SeedSequence([int(seed), int(draw)]).generate_state(max(len(drops), 1), dtype=np.uint64)
    state = {"repeated": False}

    def repeat_once(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
        if state["repeated"]:
            return None
        state["repeated"] = True
        return (args[0].repeat(samples, *([1] * (args[0].ndim - 1))), *args[1:])

    def apply_masks(i: int) -> Any:
        def hook(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> Tensor:
            inp = args[0]
            if inp.shape[0] % samples:
                raise RuntimeError("dropout input is not repeated per pass")
            g = torch.Generator().manual_seed(int(layer_seeds[i]) & 0x7FFF_FFFF_FFFF_FFFF)
            keep = dropout_masks(module, tuple(inp.shape[1:]), samples, g)
            t = inp.view(samples, inp.shape[0] // samples, *inp.shape[1:])
            return _masked_dropout(module, t, keep).view_as(inp)
        return hook

    def run(xin: Tensor, repeat: bool) -> Tensor:
        handles = [d.register_forward_hook(apply_masks(i)) for i, d in enumerate(drops)]
        if repeat:
            handles += [d.register_forward_pre_hook(repeat_once) for d in drops]
        state["repeated"] = False
        try:
            return model.logits_and_features(xin)[0]
        finally:
            for h in handles:
                h.remove()

    try:
        for d in drops:
            d.eval()  # identity: the hooks apply the masks
        try:
            logits = run(x, repeat=True)
            if logits.shape[0] != samples * x.shape[0]:
                raise RuntimeError("dropout output did not reach the logits")
        except RuntimeError:
            logits = run(x.repeat(samples, *([1] * (x.ndim - 1))), repeat=False)
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
        seed: Seed of the dropout masks (one fixed set of ``mc_samples`` masks shared by every input, so a score
            depends on the input alone) and of the calibration split.
        verbose: Progress bar.

    References:
        R. Feinman, R. Curtin, S. Shintre, A. Gardner. Detecting Adversarial Samples from Artifacts.
        arXiv:1703.00410, 2017, Section 4.1 (Bayesian neural network uncertainty).
    """

    format_tag = "rce_art.BayesianUncertaintyDetector/2"
    report_key = "neg_uncertainty"
    requires_combiner = False
    stochastic = True

    def __init__(self, classifier: Any, mc_samples: int = 50, fpr: float = 0.05, calibration_fraction: float = 0.2,
                 batch_size: int = 64, seed: int = 0, verbose: bool = False) -> None:
        super().__init__(classifier, layer=None, fpr=fpr, batch_size=batch_size, verbose=verbose)
        self.mc_samples, self.calibration_fraction, self.seed = mc_samples, calibration_fraction, seed
        self._check_params()
        self._bind()

    def _check_params(self) -> None:
        super()._check_params()
        check_integer(self.mc_samples, "mc_samples", 2)

    def characteristics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xp = self.view.preprocess(x)
        logits = self.model.logits_and_features(xp)[0]
        return logits, mc_dropout_uncertainty(self.model, xp, int(self.mc_samples), self.seed, self._eot_draw)[:, None]

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
