"""ER-Detector (Li et al., Section 3.3): per-class kernel density of ER-Classifier's code, logistic regression."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rce_art._tensors import eval_mode
from rce_art._validation import check_integer
from rce_art.detectors.characteristics import CombinedDetector
from rce_art.detectors.kdensity import KDensityDetector
from rce_art.detectors.kernel import class_log_kdensity
from rce_art.detectors.layers import LayerFeatures

__all__ = ["ERDetector"]

CODES = ("z", "combined")
MEANS = ("layer", "channel")


def encoder_activation_layers(model: nn.Module) -> list[str]:
    """Names of the activation (ReLU-family) modules inside ``model.encoder``: the hidden layers of ER2's code."""
    acts = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU)
    return [f"encoder.{n}" for n, m in model.encoder.named_modules() if n and isinstance(m, acts)]


class ERDetector(CombinedDetector):
    """Kernel density of the code of an [`ERClassifier`][rce_art.models.ERClassifier], scored under the predicted class.

    ER1 (``code="z"``) uses the code ``z = Q(x)``; ER2 (``code="combined"``) the code concatenated with the means
    of the encoder's hidden layers' outputs. One Gaussian kernel per class on training codes (``n_per_class``
    points, true labels), the log-density of an input under the class ``C(Q(x))`` predicts is its
    characteristic; `fit_combiner` (or ``fit(..., x_adv=, x_clean=)``) trains the paper's logistic
    regression on clean vs adversarial inputs of one attack (set I; no noisy negatives unless ``x_noisy`` is
    given), after which the score is
    ``-logit`` (higher = more normal). Before a combiner the score is the log-density itself. Differentiable
    (`score_tensor`), so adaptive attacks apply.

    Args:
        classifier: ART ``PyTorchClassifier`` around an ``ERClassifier``, or the module.
        code: ``"z"`` (ER1) or ``"combined"`` (ER2).
        means: ER2's hidden-layer summary: ``"layer"`` (one mean per layer, the literal reading; ours) or
            ``"channel"`` (per-channel spatial means).
        bandwidth: ``"auto"`` (leave-one-out likelihood on the training codes; the paper gives none), a sigma,
            or a key of [`PAPER_BANDWIDTHS`][rce_art.detectors.PAPER_BANDWIDTHS].
        n_per_class: Kernel points per class (the paper: all training samples; ``None`` for all).
        fpr: Target false-positive rate of the threshold.
        calibration_fraction: Share of ``fit``'s inputs held out for the threshold without ``x_calibration``.
        batch_size: Inputs per forward pass.
        seed: Seed of the kernel sample, the splits and the regression.
        verbose: Progress bar.

    References:
        Li, Min, Yu, Hsieh, Lee, Kruus. Defending Against Adversarial Examples by Regularized Deep Embedding,
        Section 3.3 (ER-Detector) and Section 4.5.
    """

    format_tag = "rce_art.ERDetector/1"
    report_key = "neg_logit"
    requires_combiner = False
    default_x_noisy = None  # the paper's regression: clean vs adversarial inputs of one attack, no noisy negatives

    def __init__(self, classifier: Any, code: str = "z", means: str = "layer", bandwidth: float | str = "auto",
                 n_per_class: int | None = 1000, fpr: float = 0.05, calibration_fraction: float = 0.2,
                 batch_size: int = 256, seed: int = 0, verbose: bool = False) -> None:
        super().__init__(classifier, layer=None, fpr=fpr, batch_size=batch_size, verbose=verbose)
        self.code, self.means, self.bandwidth, self.n_per_class = code, means, bandwidth, n_per_class
        self.calibration_fraction, self.seed = calibration_fraction, seed
        self._check_params()
        self._bind()

    def _check_params(self) -> None:
        super()._check_params()
        if self.code not in CODES or self.means not in MEANS:
            raise ValueError(f"code must be one of {CODES} and means one of {MEANS}, got {self.code!r}, {self.means!r}")
        if self.n_per_class is not None:
            check_integer(self.n_per_class, "n_per_class", 2)
        self._kd()  # the bandwidth is checked where it is used

    def _kd(self, bandwidth: float | str | None = None) -> KDensityDetector:
        """The kernel-density machinery, on codes (``KDensityDetector.fit_features``: per-class kernel bank and
        bandwidth choice); ``bandwidth`` overrides the constructor's (a loaded sigma: no new selection)."""
        return KDensityDetector(self.classifier, bandwidth=self.bandwidth if bandwidth is None else bandwidth,
                                n_per_class=self.n_per_class, seed=self.seed)

    def _bind(self) -> None:
        super()._bind()
        if not hasattr(self._view.model, "encoder"):
            raise TypeError(f"ERDetector reads the code of an rce_art.models.ERClassifier, got "
                            f"{type(self._view.model).__name__}; use KDensityDetector for other models")
        layers = encoder_activation_layers(self._view.model) if self.code == "combined" else []
        self._tap = LayerFeatures(self._view.model, [*layers, "features"], reduce="spatial_mean")

    def codes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Differentiable ``(logits (N, L), code (N, D))`` of a raw input batch: ``z`` (ER1) or the combined code."""
        logits, feats = self._tap(self.view.preprocess(x))
        if self.code == "z":
            return logits, feats[-1]
        hidden = [f.mean(1, keepdim=True) if self.means == "layer" else f for f in feats[:-1]]
        return logits, torch.cat([*hidden, feats[-1]], dim=1)

    def characteristics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, code = self.codes(x)
        return logits, class_log_kdensity(code, logits.detach().argmax(1), self.bank_, self.bandwidth_)[:, None]

    def _default_score(self, ch: Tensor) -> Tensor:
        return ch[:, 0]

    def _fit_unsupervised(self, x: np.ndarray, y: np.ndarray, batch_size: int | None) -> None:
        rng = np.random.default_rng(self.seed)
        per_class = [rng.permutation(np.flatnonzero(y == c))[: self.n_per_class] for c in range(self.nb_classes_)]
        if any(len(p) < 2 for p in per_class):
            raise ValueError("every class needs at least 2 fit inputs for its kernel density")
        bs = int(batch_size or self.batch_size)
        kernels = []
        with torch.no_grad(), eval_mode(self.model):
            for idx in per_class:
                xt = torch.as_tensor(x[idx], dtype=torch.float32)
                kernels.append(torch.cat([self.codes(xt[i : i + bs].to(self.device))[1] for i in range(0, len(xt), bs)]))
        self._set_kernels(kernels, None)

    def _set_kernels(self, kernels: list[Tensor], bandwidth: float | None) -> None:
        """Kernel bank and bandwidth of the per-class codes (``bandwidth``: a loaded sigma, else chosen)."""
        labels = torch.repeat_interleave(torch.arange(len(kernels)), torch.tensor([len(k) for k in kernels]))
        kd = self._kd(bandwidth).fit_features(torch.cat(kernels), labels, nb_classes=len(kernels))
        self.kernels_, self.bank_, self.bandwidth_ = kd.kernels(), kd.kernel_bank, kd.bandwidth_

    def _unsupervised_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        return {"bandwidth_": self.bandwidth_}, {f"kernel.{c}": k for c, k in enumerate(self.kernels_)}

    def _restore_unsupervised(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        kernels = [tensors[f"kernel.{c}"].to(self.device) for c in range(self.nb_classes_)]
        self._set_kernels(kernels, float(meta["bandwidth_"]))

    def _clear_fitted(self) -> None:
        super()._clear_fitted()
        for k in ("bank_", "kernels_"):
            self.__dict__.pop(k, None)
