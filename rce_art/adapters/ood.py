"""pytorch-ood's detectors on rce-art's one contract: calibrated threshold, ``detect``, gradients, persistence.

[`OODDetector`][] wraps a pytorch-ood detector that scores logits (``LogitsDetector``: maximum softmax, energy, max
logit, ...) or features (``FeaturesDetector``: Mahalanobis, ViM, KNN, ...) and the classifier it reads, as an rce-art
[`ScoreDetector`][rce_art.ScoreDetector]: score = the negated outlier score (higher = more normal), the classifier's
preprocessing honoured, so [`rce_art.evaluate`][rce_art.evaluate] and every adaptive attack take it as they take
rce-art's own detectors. pytorch-ood is an optional extra (``pip install "rce-art[ood]"``), imported only here.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rce_art.adapters.ood_detectors import (
    constructor_params,
    describe,
    detector_kind,
    pytorch_ood_detector_module,
)
from rce_art.adapters.ood_scores import knn_outlier, mahalanobis_outlier, vim_outlier
from rce_art.detectors.base import ScoreDetector
from rce_art.detectors.persistence import check_fingerprint, load_state, model_fingerprint, save_state
from rce_art.exceptions import GradientMaskingWarning
from rce_art.models.estimator import resolve_model

__all__ = ["OODDetector"]

#: ``score_gradient_`` values: where the gradient of the score comes from.
GRADIENTS = ("pytorch-ood", "torch form", "none")


class OODDetector(ScoreDetector):
    """A pytorch-ood detector and the classifier it reads, as an rce-art detector (higher score = more normal).

    ``fit`` extracts the classifier's logits and final hidden features (one pass, through the estimator's
    preprocessing, in eval mode), fits the pytorch-ood detector on the fit rows with ``fit_logits`` /
    ``fit_features`` (unless ``refit=False``: then it is used as it comes, already fitted), and calibrates the threshold
    on held-out clean inputs. The score is pytorch-ood's outlier score negated, computed in float64 (maximum softmax
    saturates at 1.0 in float32 and would tie).

    Gradients (``score_gradient_``): logit scores are differentiable as pytorch-ood computes them (``"pytorch-ood"``).
    Mahalanobis, ViM and KNN compute under ``no_grad`` (KNN in scikit-learn); for them the score is rce-art's torch
    form of the same computation ([`rce_art.adapters.ood_scores`][]), checked equal to pytorch-ood's own on the fit
    inputs (``"torch form"``). Any other detector whose score carries no gradient is scored by pytorch-ood with a zero
    gradient (``"none"``), with a `GradientMaskingWarning`: gradient attacks then see only the classifier, and the
    evaluation's gradient-free member (Square) is what attacks the detector.

    Args:
        classifier: ART ``PyTorchClassifier`` or ``nn.Module`` giving ordinary logits (for RCE the
            [`ReverseLogits`][rce_art.models.ReverseLogits] model).
        detector: A pytorch-ood ``LogitsDetector`` or ``FeaturesDetector``, e.g. ``EnergyBased(None)`` or
            ``KNN(None, k=50)``; its own model / encoder is not used (the classifier's pass is). ``fit`` fits it in
            place.
        refit: Fit ``detector`` on the fit rows (``True``), or use it as already fitted (``False``; only the threshold
            is calibrated).
        layer: Feature layer name for models without ``logits_and_features``.
        fpr: Target false-positive rate of the threshold.
        calibration_fraction: Fraction of the fit rows held out to calibrate the threshold when ``fit`` gets no
            ``x_calibration``.
        batch_size: Inputs per forward pass.
        seed: Seed of the calibration split.
        verbose: Progress bar during feature extraction.

    Attributes:
        score_gradient_ (str): ``"pytorch-ood"``, ``"torch form"`` or ``"none"`` (above).
        kind_ (str): ``"logits"`` or ``"features"``.
        threshold_ (float): Scores below it are flagged adversarial.
        nb_classes_ (int): Number of classes.

    Raises:
        ImportError: Without pytorch-ood.
        TypeError: If ``detector`` is not a pytorch-ood logits or features detector.

    Example:
        ```python
        from pytorch_ood.detector import EnergyBased
        det = OODDetector(classifier, EnergyBased(None)).fit(x_train, y_train, x_calibration=x_heldout)
        report, flagged = det.detect(x_test)
        ```

    References:
        K. Kirchheim, M. Filax, F. Ortmeier. PyTorch-OOD: A Library for Out-of-Distribution Detection Based on
        PyTorch. CVPR Workshops 2022.
    """

    format_tag = "rce_art.OODDetector/1"
    report_key = "negated_outlier_score"

    def __init__(self, classifier: Any, detector: Any, refit: bool = True, layer: str | None = None,
                 fpr: float = 0.05, calibration_fraction: float = 0.2, batch_size: int = 256, seed: int = 0,
                 verbose: bool = False) -> None:
        super().__init__(classifier, layer=layer, fpr=fpr, batch_size=batch_size, verbose=verbose)
        pytorch_ood_detector_module()
        self.detector, self.refit = detector, refit
        self.calibration_fraction, self.seed = calibration_fraction, seed
        self._check_params()
        self._bind()

    def _check_params(self) -> None:
        super()._check_params()
        detector_kind(self.detector)
        if not isinstance(self.refit, bool):
            raise TypeError(f"refit must be True or False, got {self.refit!r}")
        if not 0.0 < self.calibration_fraction < 1.0:
            raise ValueError(f"calibration_fraction must be in (0, 1), got {self.calibration_fraction}")

    # ---------------------------------------------------------------------- fit
    def _fit_state(self, x: np.ndarray, y: np.ndarray | None, fit_idx: np.ndarray, batch_size: int | None,
                   kwargs: dict[str, Any]) -> None:
        assert y is not None
        self.kind_ = detector_kind(self.detector)
        logits, feats = self.extract_gathered(x[fit_idx], batch_size)
        rep = (logits if self.kind_ == "logits" else feats).detach()
        labels = torch.as_tensor(y[fit_idx], device=rep.device)
        if self.refit and getattr(self.detector, "requires_fit", False):
            missing = sorted(set(range(self.nb_classes_)) - set(labels.unique().tolist()))
            if missing:
                raise ValueError(f"the fit rows have no input of classes {missing}; pytorch-ood's "
                                 f"{type(self.detector).__name__} needs every class")
            self._fit_wrapped(rep, labels)
            self.fit_inputs_, self.fit_labels_ = rep.float().cpu(), labels.long().cpu()
        else:
            self.fit_inputs_, self.fit_labels_ = torch.zeros(0, rep.shape[1]), torch.zeros(0, dtype=torch.long)
        self._prepare_scoring(rep[:256])
        self.threshold_ = float("-inf")  # scoring needs "fitted"; fit calibrates it next

    def _fit_wrapped(self, rep: Tensor, labels: Tensor) -> None:
        """Fit the pytorch-ood detector on logits / features ``rep`` and their labels, on their device."""
        self.detector.to(rep.device)
        (self.detector.fit_logits if self.kind_ == "logits" else self.detector.fit_features)(rep, labels.to(rep.device))

    def _prepare_scoring(self, probe: Tensor) -> None:
        """Choose the score's gradient source (``score_gradient_``) and check a torch form against pytorch-ood."""
        self._bank = None
        self._form = form = self._torch_form_name()
        if form == "knn" and self.fit_inputs_.shape[0] >= int(self.detector.k):
            bank = self.fit_inputs_.double().to(probe.device)
            self._bank = bank / bank.norm(dim=1, keepdim=True).clamp(min=1e-12) if self.detector.normalize else bank
        self.score_gradient_ = "torch form" if form and (form != "knn" or self._bank is not None) else "none"
        if self.score_gradient_ == "torch form":
            ours = self._outlier(probe).detach()
            with torch.no_grad():
                theirs = self._pytorch_ood_outlier(probe).double().to(ours.device)
            tol = 1e-4 * (1.0 + float(theirs.abs().max()))
            if not torch.allclose(ours, theirs, rtol=1e-4, atol=tol):
                warnings.warn(f"rce-art's torch form of {type(self.detector).__name__} differs from pytorch-ood's "
                              f"score (max {float((ours - theirs).abs().max()):.3g}; another pytorch-ood version?): "
                              "scoring with pytorch-ood's own, without gradient", GradientMaskingWarning, stacklevel=4)
                self.score_gradient_ = "none"
        if self.score_gradient_ == "none":
            xg = probe[:2].detach().clone().requires_grad_(True)
            with torch.enable_grad():
                out = self._pytorch_ood_outlier(xg)
            if isinstance(out, Tensor) and out.requires_grad:
                self.score_gradient_ = "pytorch-ood"
            else:
                warnings.warn(f"pytorch-ood's {type(self.detector).__name__} scores without gradient (no_grad or "
                              "non-torch steps): gradient attacks see only the classifier, not this detector; the "
                              "evaluation's gradient-free attack (Square) is the one that attacks it",
                              GradientMaskingWarning, stacklevel=4)

    def _torch_form_name(self) -> str | None:
        """The torch form for this pytorch-ood class (exact classes only: a subclass may change the score)."""
        if self.kind_ != "features":
            return None
        mod = pytorch_ood_detector_module()
        forms = {"Mahalanobis": "mahalanobis", "ViM": "vim", "KNN": "knn"}
        name = type(self.detector).__name__
        return forms[name] if name in forms and type(self.detector) is getattr(mod, name, None) else None

    def _fit_provenance(self, x: np.ndarray, fit_idx: np.ndarray, given: bool) -> dict[str, Any]:
        out = super()._fit_provenance(x, fit_idx, given)
        out.update({"pytorch_ood": type(self.detector).__name__, "refit": self.refit,
                    "score_gradient": self.score_gradient_})
        return out

    # ------------------------------------------------------------------ scoring
    def _pytorch_ood_outlier(self, rep: Tensor) -> Tensor:
        if self.kind_ == "logits":
            return self.detector.predict_logits(rep.double())
        return self.detector.predict_features(rep)

    def _outlier(self, rep: Tensor) -> Tensor:
        """pytorch-ood's outlier score of a logits / features batch, differentiable where ``score_gradient_`` says."""
        if self.score_gradient_ != "torch form":
            return self._pytorch_ood_outlier(rep)
        d = self.detector
        if self._form == "mahalanobis":
            return mahalanobis_outlier(rep, d.mu, d.precision)
        if self._form == "vim":
            return vim_outlier(rep, d.w, d.b, d.u, d.principal_subspace, d.alpha)
        assert self._bank is not None
        return knn_outlier(rep, self._bank, int(d.k), bool(d.normalize))

    def score_features(self, logits: Tensor, features: Tensor) -> Tensor:
        """Negated outlier score ``(N,)`` float64 (higher = more normal), differentiable unless ``score_gradient_``
        is ``"none"`` (then its gradient is zero)."""
        rep = logits if self.kind_ == "logits" else features
        score = -self._outlier(rep).to(device=logits.device, dtype=torch.float64).reshape(-1)
        if self.score_gradient_ == "none":
            score = score.detach() + 0.0 * rep.sum(1)  # a graph for the attacks' autograd calls; zero gradient
        return score

    # -------------------------------------------------------------- persistence
    def _current_params(self) -> dict[str, Any]:
        """The parameters, the wrapped detector described by its class and constructor parameters (what ``fit_params_``
        and ``repr`` show, and the file records)."""
        return {**super()._current_params(), "detector": describe(self.detector)}

    def __repr__(self) -> str:
        params = {k: v for k, v in self._current_params().items() if k != "detector"}
        return (f"OODDetector(detector={describe(self.detector)}, "
                + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")")

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        meta, tensors = super()._fitted_state()
        meta.update({"nb_classes_": self.nb_classes_, "kind_": self.kind_, "score_gradient_": self.score_gradient_})
        tensors.update({"fit_inputs_": self.fit_inputs_.contiguous(), "fit_labels_": self.fit_labels_.contiguous()})
        return meta, tensors

    def _restore_state(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        """The threshold and calibration scores, then the pytorch-ood detector refitted on the stored representation
        (deterministic) and the scoring prepared as ``fit`` did."""
        super()._restore_state(meta, tensors)
        self.nb_classes_, self.kind_ = int(meta["nb_classes_"]), meta["kind_"]
        self.fit_inputs_, self.fit_labels_ = tensors["fit_inputs_"], tensors["fit_labels_"]
        rep = self.fit_inputs_.to(self.device)
        if rep.shape[0]:  # fitted by rce-art (the file of a detector fitted elsewhere is refused by save)
            self._fit_wrapped(rep, self.fit_labels_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GradientMaskingWarning)  # warned when it was fitted
            self._prepare_scoring(rep[:256])

    def save(self, path: Any) -> None:
        """Save the threshold, the representation the pytorch-ood detector was fitted on and its constructor
        parameters (safetensors + JSON, never pickled); [`load`][] rebuilds and refits it from them.

        Raises:
            NotFittedError: Before ``fit``.
            ValueError: If the wrapped detector was fitted outside rce-art (``refit=False``) and has fitted state, or
                has a constructor parameter that is not stored under its own name as a number, string or tensor.
        """
        self.check_fitted()
        if not self.refit and getattr(self.detector, "requires_fit", False):
            raise ValueError(f"this OODDetector wraps a {type(self.detector).__name__} fitted outside rce-art "
                             "(refit=False): its fitted state cannot be written without pickling. Let OODDetector "
                             "fit it (refit=True, the default) to save it, or keep the pytorch-ood object yourself")
        params, ptensors = constructor_params(self.detector)
        meta, tensors = self._fitted_state()
        meta.update({"pytorch_ood_class": type(self.detector).__name__, "pytorch_ood_params": params})
        tensors.update({f"pytorch_ood.{k}": v for k, v in ptensors.items()})
        save_state(path, self.format_tag, {"params": self.fit_params_, "fitted": meta,
                                           "provenance": getattr(self, "provenance_", {}),
                                           "model": model_fingerprint(self._view.model)}, tensors)

    @classmethod
    def load(cls, path: Any, classifier: Any, strict: bool = True) -> OODDetector:
        """Load a file written by [`save`][]: the pytorch-ood detector is rebuilt from its class and parameters and
        refitted on the stored representation (deterministic), then the threshold restored.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            ImportError: Without pytorch-ood.
            ValueError: If the file is not an OODDetector file, or was fitted on another model.
        """
        meta, tensors = load_state(path, cls.format_tag)
        check_fingerprint(path, meta.get("model"), resolve_model(classifier).model, strict)
        fitted = meta["fitted"]
        mod = pytorch_ood_detector_module()
        kwargs = {**fitted["pytorch_ood_params"],
                  **{k.removeprefix("pytorch_ood."): v for k, v in tensors.items() if k.startswith("pytorch_ood.")}}
        ood = getattr(mod, fitted["pytorch_ood_class"])(None, **kwargs)
        det = cls(classifier, ood, **{k: v for k, v in meta["params"].items() if k != "detector"})
        det._restore_state(fitted, tensors)
        det.fit_params_ = det._current_params()
        det.provenance_ = meta.get("provenance", {})
        return det
