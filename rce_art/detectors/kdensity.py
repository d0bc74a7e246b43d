"""K-density detector (Feinman et al. 2017; Pang et al. 2018, Section 3.3) in ART's form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.defences.detector.evasion import EvasionDetector
from torch import Tensor

from rce_art._validation import check_inputs, check_labels, check_positive, to_numpy
from rce_art.adapters.art import resolve_model
from rce_art.detectors.calibration import calibrate_threshold
from rce_art.detectors.kernel import PAPER_BANDWIDTHS, KernelBank, class_log_kdensity, select_bandwidth
from rce_art.exceptions import NotFittedError
from rce_art.models.features import as_feature_model

__all__ = ["KDensityDetector"]

_FORMAT = "rce_art.KDensityDetector/1"


class KDensityDetector(EvasionDetector):
    """Flag inputs whose final-hidden-layer K-density under their predicted class is low.

    The score of an input ``x`` predicted as class ``ŷ`` is
    ``log KD(x) = log((1/|X_ŷ|) sum_{z_i in X_ŷ} exp(-||z(x) - z_i||^2 / sigma^2))``
    over final hidden features ``z_i`` of training points of class ``ŷ``. Higher is more
    normal; ``detect`` flags scores below a threshold calibrated on clean data to a
    target false-positive rate.

    Args:
        classifier: ART ``PyTorchClassifier`` or ``nn.Module`` giving ordinary logits
            (for RCE, the :class:`~rce_art.models.ReverseLogits` model). Its features are
            taken from ``logits_and_features`` or, failing that, a :class:`~rce_art.models.FeatureTap`.
        bandwidth: ``sigma`` as a number, ``"paper-rce"`` / ``"paper-ce"`` (the paper's values
            for its ResNet-32 features, sigma^2 = 0.1/0.26 and 1/0.26), or ``"auto"`` (default):
            leave-one-out likelihood cross-validation on the kernel's training points
            (:func:`~rce_art.detectors.kernel.select_bandwidth`).
        n_per_class: Training points per class kept in the kernel, sampled with ``seed``
            (the paper's code uses 1000); ``None`` keeps all.
        layer: Feature layer name for models without ``logits_and_features``.
        fpr: Target false-positive rate of the threshold.
        calibration_fraction: Fraction of the sampled training points held out of the kernel
            to calibrate the threshold when ``fit`` gets no ``x_calibration``.
        batch_size: Batch size for feature extraction.
        seed: Seed of the per-class sampling and the calibration split.

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

    defence_params = ["classifier", "bandwidth", "n_per_class", "layer", "fpr", "calibration_fraction", "batch_size", "seed"]

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
    ) -> None:
        super().__init__()
        self.classifier = classifier
        self.bandwidth = bandwidth
        self.n_per_class = n_per_class
        self.layer = layer
        self.fpr = fpr
        self.calibration_fraction = calibration_fraction
        self.batch_size = batch_size
        self.seed = seed
        self._check_params()
        self._view = resolve_model(classifier)
        self._model = as_feature_model(self._view.model, layer)

    def _check_params(self) -> None:
        if isinstance(self.bandwidth, str):
            if self.bandwidth != "auto" and self.bandwidth not in PAPER_BANDWIDTHS:
                raise ValueError(f"bandwidth must be a number > 0, 'auto' or one of {sorted(PAPER_BANDWIDTHS)}, got {self.bandwidth!r}")
        else:
            check_positive(self.bandwidth, "bandwidth")
        if self.n_per_class is not None and (int(self.n_per_class) != self.n_per_class or self.n_per_class < 1):
            raise ValueError(f"n_per_class must be a positive integer or None, got {self.n_per_class!r}")
        if not 0.0 <= self.fpr < 1.0:
            raise ValueError(f"fpr must be in [0, 1), got {self.fpr}")
        if not 0.0 < self.calibration_fraction < 1.0:
            raise ValueError(f"calibration_fraction must be in (0, 1), got {self.calibration_fraction}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    # ----------------------------------------------------------------- features
    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._model.logits_and_features(self._view.preprocess(x.to(self._view.device)))

    def _check_x(self, x: Any, name: str = "x") -> None:
        check_inputs(x, name=name, input_shape=self._view.input_shape, clip_values=self._view.clip_values)

    @torch.no_grad()
    def extract(self, x: Any, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """Logits ``(N, L)`` and final hidden features ``(N, D)`` of inputs, in eval mode.

        Raises:
            TypeError, ValueError: On invalid input (see :meth:`detect`).
        """
        self._check_x(x)
        bs = int(batch_size or self.batch_size)
        was_training = self._model.training
        self._model.eval()
        try:
            xt = torch.as_tensor(x, dtype=torch.float32)
            parts = [self._forward(xt[i : i + bs]) for i in range(0, xt.shape[0], bs)]
        finally:
            self._model.train(was_training)
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    # ---------------------------------------------------------------------- fit
    def fit(self, x: Any, y: Any, batch_size: int | None = None, nb_epochs: int = 0, **kwargs: Any) -> KDensityDetector:
        """Extract the kernel's training features, choose the bandwidth and calibrate the threshold.

        Args:
            x: Training inputs ``(N, *input_shape)`` in the classifier's pixel range.
            y: Their true labels, ``(N,)`` integers or ``(N, L)`` one-hot.
            batch_size: Feature-extraction batch size (default: the constructor's).
            nb_epochs: Ignored (ART signature; nothing is trained).
            **kwargs: ``x_calibration``: held-out clean inputs for the threshold. Without it,
                ``calibration_fraction`` of the sampled training points is held out of the kernel.

        Returns:
            ``self``.

        Raises:
            ValueError: On invalid inputs or labels, or a class with no training point.
        """
        self._check_x(x)
        unknown = set(kwargs) - {"x_calibration"}
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}; fit accepts x_calibration")
        logits, _ = self.extract(x[:1])
        nb_classes = logits.shape[1]
        y_int = check_labels(y, x.shape[0], nb_classes)
        rng = np.random.default_rng(self.seed)
        x_cal = kwargs.get("x_calibration")
        kernel_idx, cal_idx = [], []
        for c in range(nb_classes):
            idx = rng.permutation(np.flatnonzero(y_int == c))
            if idx.size == 0:
                raise ValueError(f"class {c} has no training points; the K-density of class {c} is undefined")
            if x_cal is None:
                n_cal = max(1, int(round(self.calibration_fraction * idx.size))) if idx.size > 1 else 0
                cal_idx.append(idx[:n_cal])
                idx = idx[n_cal:]
            kernel_idx.append(idx if self.n_per_class is None else idx[: self.n_per_class])
        kidx = np.concatenate(kernel_idx)
        _, feats = self.extract(x[kidx], batch_size)
        self.fit_features(feats, torch.as_tensor(y_int[kidx]), nb_classes=nb_classes)
        self.calibrate(x_cal if x_cal is not None else x[np.concatenate(cal_idx)], batch_size=batch_size)
        return self

    def fit_features(self, features: Tensor, labels: Tensor, nb_classes: int | None = None) -> KDensityDetector:
        """Feature-level fit: store the kernel and choose the bandwidth (no threshold yet).

        Args:
            features: Final hidden features ``(M, D)`` of training points.
            labels: Their classes ``(M,)``.
            nb_classes: Number of classes (default: ``labels.max() + 1``).

        Returns:
            ``self``.
        """
        self._store_kernel(features, labels, nb_classes)
        if self.bandwidth == "auto":
            self.bandwidth_, self.bandwidth_grid_, self.bandwidth_scores_ = select_bandwidth(self._kernels)
        elif isinstance(self.bandwidth, str):
            self.bandwidth_ = PAPER_BANDWIDTHS[self.bandwidth]
        else:
            self.bandwidth_ = float(self.bandwidth)
        self.threshold_ = float("-inf")
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
        self.features_ = features.detach()[order].to(self._view.device)
        self.labels_ = y[order].to(self._view.device)
        self.nb_classes_ = nb
        self._kernels = list(torch.split(self.features_, counts.tolist()))
        self._bank = KernelBank.from_kernels(self._kernels)

    def calibrate(self, x: Any, fpr: float | None = None, batch_size: int | None = None) -> KDensityDetector:
        """Set ``threshold_`` so that a fraction ``fpr`` (default: the constructor's) of clean ``x`` is flagged.

        Use held-out clean data the model was not trained on for an honest FPR.
        """
        self.threshold_ = calibrate_threshold(self.score(x, batch_size), self.fpr if fpr is None else fpr)
        return self

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "features_"):
            raise NotFittedError("this KDensityDetector is not fitted yet; call fit(x_train, y_train) first")

    @property
    def clip_values(self) -> tuple[float, float] | None:
        """Pixel range of the classifier's inputs (``None`` for a bare module)."""
        return self._view.clip_values

    @property
    def device(self) -> torch.device:
        """Device of the classifier (and of the kernel)."""
        return self._view.device

    def kernels(self) -> list[Tensor]:
        """The kernel's training features, one ``(M_c, D)`` tensor per class (in sampling order)."""
        self._check_fitted()
        return list(self._kernels)

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Differentiable ``(logits (N, L), features (N, D))`` of a tensor batch, one forward pass, no checks.

        The model stays in its current train/eval mode; used by adaptive attacks in their inner loop.
        """
        return self._forward(x)

    def log_density_features(self, features: Tensor, classes: Tensor) -> Tensor:
        """Differentiable log K-density of features under the given classes' kernels.

        Args:
            features: ``(N, D)`` final hidden features (may require grad).
            classes: ``(N,)`` class of each row (the predicted class in the paper).

        Returns:
            ``(N,)`` log K-density, differentiable with respect to ``features``.
        """
        self._check_fitted()
        check_inputs(features, name="features", input_shape=(self.features_.shape[1],))
        cls = torch.as_tensor(check_labels(classes, features.shape[0], self.nb_classes_, name="classes"))
        return class_log_kdensity(features, cls.to(features.device), self._bank, self.bandwidth_)

    def log_density(self, x: Tensor, classes: Tensor | None = None) -> Tensor:
        """Differentiable log K-density of inputs (one forward pass, model kept in its current mode).

        Args:
            x: Inputs ``(N, *input_shape)``, a tensor (may require grad).
            classes: Kernel class per input; default the model's predicted class.

        Returns:
            ``(N,)`` log K-density, differentiable with respect to ``x``.
        """
        self._check_fitted()
        if not isinstance(x, Tensor):
            raise TypeError(f"log_density takes a torch tensor (for gradients); got {type(x).__name__}, use score()")
        self._check_x(x)
        logits, feats = self._forward(x)
        cls = logits.argmax(1) if classes is None else torch.as_tensor(classes, device=feats.device)
        return self.log_density_features(feats, cls)

    def score(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """Log K-density under the predicted class, ``(N,)`` numpy (higher = more normal)."""
        return self._scores_and_predictions(x, batch_size)[0]

    def _scores_and_predictions(self, x: Any, batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        logits, feats = self.extract(x, batch_size)
        pred = logits.argmax(1)
        with torch.no_grad():
            scores = class_log_kdensity(feats, pred, self._bank, self.bandwidth_)
        return to_numpy(scores).astype(np.float64), to_numpy(pred)

    def detect(self, x: Any, batch_size: int | None = None, **kwargs: Any) -> tuple[dict, np.ndarray]:
        """Flag inputs whose log K-density is below ``threshold_``.

        Args:
            x: Inputs ``(N, *input_shape)`` (numpy or tensor, finite, in the pixel range).
            batch_size: Feature-extraction batch size.

        Returns:
            ``(report, is_adversarial)``: ``report`` has ``"log_density"`` ``(N,)``,
            ``"predicted_class"`` ``(N,)`` and ``"threshold"``; ``is_adversarial`` is a boolean ``(N,)`` array.

        Raises:
            NotFittedError: Before ``fit``.
            TypeError: If ``x`` is not a floating array or tensor.
            ValueError: On an empty batch, NaN/inf, a wrong shape or out-of-range pixels.
        """
        scores, pred = self._scores_and_predictions(x, batch_size)
        report = {"log_density": scores, "predicted_class": pred, "threshold": self.threshold_}
        return report, scores < self.threshold_

    def predict_or_reject(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """Predicted labels, with ``-1`` ("NOT SURE", paper Section 3.3) for flagged inputs."""
        report, flagged = self.detect(x, batch_size)
        return np.where(flagged, -1, report["predicted_class"])

    # -------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Save the fitted state as safetensors (tensors) with JSON metadata; no pickle."""
        from safetensors.torch import save_file

        self._check_fitted()
        meta = {
            "format": _FORMAT,
            "params": {k: getattr(self, k) for k in self.defence_params if k != "classifier"},
            "bandwidth_": self.bandwidth_,
            "threshold_": self.threshold_,
            "nb_classes_": self.nb_classes_,
        }
        tensors = {"features_": self.features_.cpu().contiguous(), "labels_": self.labels_.cpu().contiguous()}
        save_file(tensors, str(path), metadata={"rce_art": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | Path, classifier: Any) -> KDensityDetector:
        """Load a detector saved by :meth:`save` and attach it to ``classifier``.

        Raises:
            ValueError: If the file is not an rce-art K-density detector.
        """
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta_raw = (f.metadata() or {}).get("rce_art")
            if meta_raw is None:
                raise ValueError(f"{path} is not a file written by KDensityDetector.save")
            meta = json.loads(meta_raw)
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path} has format {meta.get('format')!r}, expected {_FORMAT!r}")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        det = cls(classifier, **meta["params"])
        det._store_kernel(tensors["features_"], tensors["labels_"], meta["nb_classes_"])
        det.bandwidth_, det.threshold_ = float(meta["bandwidth_"]), float(meta["threshold_"])
        return det

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.defence_params if k != "classifier")
        return f"{type(self).__name__}({params})"
