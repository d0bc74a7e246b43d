"""K-density detector (Feinman et al. 2017; Pang et al. 2018, Section 3.3) in ART's form."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rce_art._validation import check_inputs, check_integer, check_labels, check_positive
from rce_art.detectors.base import ScoreDetector
from rce_art.detectors.kernel import PAPER_BANDWIDTHS, KernelBank, class_log_kdensity, select_bandwidth

__all__ = ["KDensityDetector"]


class KDensityDetector(ScoreDetector):
    """Flag inputs whose final-hidden-layer K-density under their predicted class is low.

    The score of an input ``x`` predicted as class ``ŷ`` is
    ``log KD(x) = log((1/|X_ŷ|) sum_{z_i in X_ŷ} exp(-||z(x) - z_i||^2 / sigma^2))``
    over final hidden features ``z_i`` of training points of class ``ŷ`` (higher = more normal);
    ``detect`` flags scores below a threshold calibrated on clean data to a target false-positive
    rate (the shared contract of [`ScoreDetector`][rce_art.detectors.base.ScoreDetector]).

    Args:
        classifier: ART ``PyTorchClassifier`` or ``nn.Module`` giving ordinary logits
            (for RCE, the [`ReverseLogits`][rce_art.models.ReverseLogits] model). Its features are
            taken from ``logits_and_features`` or, failing that, a [`FeatureTap`][rce_art.models.FeatureTap].
        bandwidth: ``sigma`` as a number, ``"paper-rce"`` / ``"paper-ce"`` (the paper's values
            for its ResNet-32 features, sigma^2 = 0.1/0.26 and 1/0.26), or ``"auto"`` (default):
            leave-one-out likelihood cross-validation on the kernel's training points
            ([`select_bandwidth`][rce_art.detectors.kernel.select_bandwidth]).
        n_per_class: Training points per class kept in the kernel, sampled with ``seed``
            (the paper's code uses 1000); ``None`` keeps all.
        layer: Feature layer name for models without ``logits_and_features``.
        fpr: Target false-positive rate of the threshold.
        calibration_fraction: Fraction of the sampled training points held out of the kernel
            to calibrate the threshold when ``fit`` gets no ``x_calibration``.
        batch_size: Batch size for feature extraction.
        seed: Seed of the per-class sampling and the calibration split.
        verbose: Show a progress bar during feature extraction.

    Attributes:
        features_ (Tensor): Kernel features ``(M, D)``, grouped by class.
        labels_ (Tensor): Class of each kernel point ``(M,)``.
        bandwidth_ (float): The ``sigma`` in use.
        threshold_ (float): Scores below it are flagged adversarial.
        nb_classes_ (int): Number of classes.

    References:
        R. Feinman, R. Curtin, S. Shintre, A. Gardner. Detecting Adversarial Samples from
        Artifacts. arXiv:1703.00410, 2017. T. Pang, C. Du, Y. Dong, J. Zhu. Towards Robust
        Detection of Adversarial Examples. NeurIPS 2018, Section 3.3.
    """

    format_tag = "rce_art.KDensityDetector/2"
    report_key = "log_density"

    def __init__(
        self,
        classifier: Any,
        bandwidth: float | str = "auto",
        n_per_class: int | None = 1000,
        layer: str | None = None,
        fpr: float = 0.05,
        calibration_fraction: float = 0.2,
        batch_size: int = 256,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        super().__init__(classifier, layer=layer, fpr=fpr, batch_size=batch_size, verbose=verbose)
        self.bandwidth = bandwidth
        self.n_per_class = n_per_class
        self.calibration_fraction = calibration_fraction
        self.seed = seed
        self._check_params()
        self._bind()

    def _check_params(self) -> None:
        super()._check_params()
        if isinstance(self.bandwidth, str):
            if self.bandwidth != "auto" and self.bandwidth not in PAPER_BANDWIDTHS:
                raise ValueError(f"bandwidth must be a number > 0, 'auto' or one of {sorted(PAPER_BANDWIDTHS)}, "
                                 f"got {self.bandwidth!r}")
        else:
            check_positive(self.bandwidth, "bandwidth")
        if self.n_per_class is not None:
            check_integer(self.n_per_class, "n_per_class", 1)
        if not 0.0 < self.calibration_fraction < 1.0:
            raise ValueError(f"calibration_fraction must be in (0, 1), got {self.calibration_fraction}")

    # ---------------------------------------------------------------------- fit
    # fit: the base template. Data seen: the kernel holds up to ``n_per_class`` points per class of ``(x, y)``; the
    # threshold is calibrated on ``x_calibration`` or, without it, on a ``calibration_fraction`` of each class held
    # out of the kernel.
    def _fit_split(self, x: np.ndarray, y: np.ndarray | None, hold_out: bool) -> tuple[np.ndarray, np.ndarray]:
        assert y is not None  # fit_needs_labels
        rng = np.random.default_rng(self.seed)
        kernel_idx, cal_idx = [], []
        for c in range(self.nb_classes_):
            idx = rng.permutation(np.flatnonzero(y == c))
            if idx.size == 0:
                raise ValueError(f"class {c} has no training points; the K-density of class {c} is undefined")
            if hold_out:
                n_cal = max(1, round(float(self.calibration_fraction) * idx.size)) if idx.size > 1 else 0
                cal_idx.append(idx[:n_cal])
                idx = idx[n_cal:]
            kernel_idx.append(idx if self.n_per_class is None else idx[: self.n_per_class])
        return np.concatenate(kernel_idx), (np.concatenate(cal_idx) if hold_out else np.arange(0))

    def _fit_state(self, x: np.ndarray, y: np.ndarray | None, fit_idx: np.ndarray, batch_size: int | None,
                   kwargs: dict[str, Any]) -> None:
        assert y is not None
        logits, feats = self.extract_gathered(x[fit_idx], batch_size)  # split across torchrun processes
        self.check_reverse_network(logits, torch.as_tensor(y[fit_idx]))
        self.fit_features(feats, torch.as_tensor(y[fit_idx]), nb_classes=self.nb_classes_)

    def _fit_provenance(self, x: np.ndarray, fit_idx: np.ndarray, given: bool) -> dict[str, Any]:
        return {"n_fit": int(x.shape[0]), "n_kernel": int(fit_idx.size),
                "calibration": "x_calibration" if given else
                f"{self.calibration_fraction:.0%} of the fit data held out of the kernel",
                "n_calibration": int(self.calibration_scores_.numel())}

    def fit_features(self, features: Tensor, labels: Tensor, nb_classes: int | None = None) -> KDensityDetector:
        """Feature-level fit: store the kernel and choose the bandwidth (the threshold is left at ``-inf``).

        Args:
            features: Final hidden features ``(M, D)`` of training points.
            labels: Their classes ``(M,)``.
            nb_classes: Number of classes (default: ``labels.max() + 1``).

        Returns:
            ``self``.
        """
        self._store_kernel(features, labels, nb_classes)
        if self.bandwidth == "auto":
            self.bandwidth_, self.bandwidth_grid_, self.bandwidth_scores_ = select_bandwidth(self._bank.kernels)
        elif isinstance(self.bandwidth, str):
            self.bandwidth_ = PAPER_BANDWIDTHS[self.bandwidth]
        else:
            self.bandwidth_ = float(self.bandwidth)
        self.threshold_ = float("-inf")
        self.calibration_scores_ = torch.zeros(0, dtype=torch.float64)
        self.fit_params_ = self._current_params()
        return self

    def _store_kernel(self, features: Tensor, labels: Tensor, nb_classes: int | None) -> None:
        check_inputs(features, name="features")
        if features.ndim != 2:
            raise ValueError(f"features must have shape (M, D), got {tuple(features.shape)}")
        nb = int(nb_classes if nb_classes is not None else int(labels.max()) + 1)
        y = torch.as_tensor(check_labels(labels, features.shape[0], nb, name="labels"))
        counts = torch.bincount(y, minlength=nb)
        if bool((counts == 0).any()):
            missing = torch.nonzero(counts == 0).flatten().tolist()
            raise ValueError(f"classes {missing} have no training points; the K-density of those classes is undefined")
        order = torch.argsort(y, stable=True)
        self.features_ = features.detach()[order].to(self.device)
        self.labels_ = y[order].to(self.device)
        self.nb_classes_ = nb
        self._bank = KernelBank.from_kernels(torch.split(self.features_, counts.tolist()))

    def _clear_fitted(self) -> None:
        super()._clear_fitted()
        self.__dict__.pop("_bank", None)

    # ------------------------------------------------------------------ scoring
    @property
    def kernel_bank(self) -> KernelBank:
        """The fitted per-class kernel, prepared for repeated scoring ([`KernelBank`][rce_art.detectors.KernelBank])."""
        self.check_fitted()
        return self._bank

    def kernels(self) -> list[Tensor]:
        """The kernel's training features, one ``(M_c, D)`` tensor per class (in sampling order)."""
        self.check_fitted()
        return list(self._bank.kernels)

    def log_density_features(self, features: Tensor, classes: Tensor) -> Tensor:
        """Differentiable log K-density of features under the given classes' kernels.

        Args:
            features: ``(N, D)`` final hidden features (may require grad).
            classes: ``(N,)`` class of each row (the predicted class in the paper).

        Returns:
            ``(N,)`` log K-density, differentiable with respect to ``features``.
        """
        self.check_fitted()
        check_inputs(features, name="features", input_shape=(self.features_.shape[1],))
        cls = torch.as_tensor(check_labels(classes, features.shape[0], self.nb_classes_, name="classes"))
        return class_log_kdensity(features, cls.to(features.device), self._bank, self.bandwidth_)

    def score_features(self, logits: Tensor, features: Tensor) -> Tensor:
        """Log K-density under the predicted class (the detector's score), differentiable in ``features``."""
        return class_log_kdensity(features, logits.argmax(1), self._bank, self.bandwidth_)

    def log_density(self, x: Tensor, classes: Tensor | None = None) -> Tensor:
        """Differentiable log K-density of inputs (one forward pass, model kept in its current mode).

        Args:
            x: Inputs ``(N, *input_shape)``, a tensor (may require grad).
            classes: Kernel class per input; default the model's predicted class.

        Returns:
            ``(N,)`` log K-density, differentiable with respect to ``x``.
        """
        if classes is None:
            return self.score_tensor(x)
        self.check_fitted()
        if not isinstance(x, Tensor):
            raise TypeError(f"log_density takes a torch tensor (for gradients); got {type(x).__name__}, use score()")
        self._check_x(x)
        _, feats = self.logits_and_features(x)
        return self.log_density_features(feats, torch.as_tensor(classes, device=feats.device))

    # -------------------------------------------------------------- persistence
    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        meta, tensors = super()._fitted_state()
        meta.update(bandwidth_=self.bandwidth_, nb_classes_=self.nb_classes_)
        tensors.update(features_=self.features_, labels_=self.labels_)
        return meta, tensors

    def _restore_state(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        self._store_kernel(tensors["features_"], tensors["labels_"], meta["nb_classes_"])
        self.bandwidth_ = float(meta["bandwidth_"])
        super()._restore_state(meta, tensors)
