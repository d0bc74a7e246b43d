"""The contract every rce-art detector shares, in ART's ``EvasionDetector`` form.

A detector scores inputs with ONE direction for the whole family: **higher = more normal**.
``detect`` flags scores below ``threshold_``, calibrated on held-out clean data so that a
fraction ``fpr`` of clean inputs is flagged. Subclasses say how features become scores
([`ScoreDetector.score_features`][ScoreDetector.score_features]) and what ``fit`` learns; this base gives them input
validation, feature extraction in eval mode through the estimator's preprocessing, a
differentiable [`ScoreDetector.score_tensor`][ScoreDetector.score_tensor] for adaptive attacks, calibration,
``predict_or_reject``, coherent ``set_params`` and persistence without pickle.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from art.defences.detector.evasion import EvasionDetector
from torch import Tensor, nn
from tqdm.auto import tqdm

from rce_art._signature import init_parameters
from rce_art._tensors import eval_mode
from rce_art._validation import check_inputs, check_integer, check_labels, is_data_source, materialise, to_numpy
from rce_art.detectors.calibration import calibrate_threshold, is_flagged
from rce_art.detectors.persistence import check_fingerprint, load_state, model_fingerprint, save_state
from rce_art.distributed import all_gather_concat, is_distributed, shard_slice
from rce_art.exceptions import CalibrationWarning, NotFittedError
from rce_art.models.estimator import TorchView, resolve_model
from rce_art.models.features import as_feature_model

__all__ = ["ScoreDetector"]


class ScoreDetector(EvasionDetector):
    """Base class: a detector that scores inputs (higher = more normal) and flags low scores.

    Parameters are the signature (as in scikit-learn): ``defence_params`` (ART's list of the constructor's
    arguments) is derived from ``__init__``, and ``fit_params`` (those whose change invalidates a fit) is it minus
    `NOT_FIT_PARAMS`. Subclasses store every argument under its own name, set ``format_tag`` and ``report_key``,
    and implement [`score_features`][], the fit hooks (``_fit_split``, ``_fit_state``, ``_fit_provenance``: [`fit`][]
    is one template for the whole family), ``_fitted_state`` and ``_restore_state``.

    Attributes:
        threshold_ (float): Scores below it are flagged adversarial.
        calibration_scores_ (Tensor): Sorted clean scores the threshold was calibrated on (float64);
            ``set_params(fpr=...)`` recalibrates from them.
        fit_params_ (dict): The parameters (all but ``classifier``) in force at ``fit`` / ``calibrate``;
            what [`save`][] writes.
        provenance_ (dict): What the detector was fitted and calibrated on (sizes, sources).
    """

    defence_params: ClassVar[list[str]]
    fit_params: ClassVar[tuple[str, ...]]
    #: Parameters that change no fitted state: ``fpr`` recalibrates from the stored scores, the others only run.
    NOT_FIT_PARAMS: ClassVar[frozenset[str]] = frozenset({"fpr", "batch_size", "verbose"})
    format_tag: ClassVar[str] = "rce_art.ScoreDetector/1"
    report_key: ClassVar[str] = "score"
    #: Whether the score is built from random draws (MC-dropout masks). Such a detector still scores an input
    #: deterministically (draw 0: fixed masks shared by every input of every batch); [`eot_draw`][] selects
    #: other, independent draws for attacks that average over them (expectation over transformation).
    stochastic: ClassVar[bool] = False
    _eot_draw: int = 0
    #: Keyword arguments [`fit`][] accepts besides ``x`` and ``y``.
    fit_kwargs: ClassVar[frozenset[str]] = frozenset({"x_calibration"})
    #: Whether [`fit`][] needs labels (a detector that learns nothing from data takes none).
    fit_needs_labels: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._derive_params()

    @classmethod
    def _derive_params(cls) -> None:
        cls.defence_params = [p.name for p in init_parameters(cls)]
        cls.fit_params = tuple(p for p in cls.defence_params if p not in cls.NOT_FIT_PARAMS)

    def __init__(self, classifier: Any, layer: str | None = None, fpr: float = 0.05, batch_size: int = 256,
                 verbose: bool = False) -> None:
        super().__init__()
        self.classifier, self.layer, self.fpr = classifier, layer, fpr
        self.batch_size, self.verbose = batch_size, verbose

    def _check_params(self) -> None:
        if not 0.0 <= float(self.fpr) < 1.0:
            raise ValueError(f"fpr must be in [0, 1), got {self.fpr}")
        check_integer(self.batch_size, "batch_size", 1)

    def _bind(self) -> None:
        """(Re)build the torch view of ``classifier`` and the feature model on ``layer``."""
        self._view = resolve_model(self.classifier)
        self._model = as_feature_model(self._view.model, self.layer)

    # ------------------------------------------------------------- the model
    @property
    def view(self) -> TorchView:
        """The [`TorchView`][rce_art.models.TorchView] of the classifier (model, device, clip values, preprocessing)."""
        return self._view

    @property
    def model(self) -> nn.Module:
        """The torch module (ordinary logits and features, on preprocessed inputs) the detector reads."""
        return self._model

    @property
    def clip_values(self) -> tuple[float, float] | None:
        """Pixel range of the classifier's inputs (``None`` for a bare module)."""
        return self._view.clip_values

    @property
    def device(self) -> torch.device:
        """Device of the classifier (and of the fitted tensors)."""
        return self._view.device

    def _check_x(self, x: Any, name: str = "x") -> None:
        check_inputs(x, name=name, input_shape=self._view.input_shape, clip_values=self._view.clip_values)

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Differentiable ``(logits (N, L), features (N, D))`` of a raw input batch, one forward pass, no checks.

        The estimator's preprocessing is applied first, as ART's ``predict`` does. The model stays in
        its current mode: callers (attacks) wrap their loop in eval mode.
        """
        return self._model.logits_and_features(self._view.preprocess(x.to(self._view.device)))

    @torch.no_grad()
    def extract(self, x: Any, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """Logits ``(N, L)`` and final hidden features ``(N, D)`` of inputs, in eval mode (mode restored).

        Raises:
            TypeError, ValueError: On invalid input (see [`detect`][]).
        """
        self._check_x(x)
        bs = int(batch_size or self.batch_size)
        xt = torch.as_tensor(x, dtype=torch.float32)
        with eval_mode(self._model):
            parts = [self.logits_and_features(xt[i : i + bs])
                     for i in tqdm(range(0, xt.shape[0], bs), desc="features", disable=not self.verbose, leave=False)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def extract_gathered(self, x: Any, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """[`extract`][] with the work split across torchrun processes and the results gathered.

        Each process extracts a contiguous slice (boundaries on multiples of the batch size); every process
        returns the logits and features of all of ``x``, in order. In a single process this is
        [`extract`][].
        """
        bs = int(batch_size or self.batch_size)
        if not is_distributed():
            return self.extract(x, bs)
        sl = shard_slice(len(x), block=bs)
        logits, feats = self.extract(x[sl] if sl.stop > sl.start else x[:1], bs)
        if sl.stop <= sl.start:
            logits, feats = logits[:0], feats[:0]
        out = all_gather_concat({"logits": logits, "features": feats})
        return out["logits"], out["features"]

    def check_reverse_network(self, logits: Tensor, y: Tensor) -> None:
        """Raise if the classifier looks like a raw RCE network (reverse predictions) on labelled data.

        Raises:
            ValueError: If its accuracy is below chance while its *argmin* is right on most inputs.
        """
        acc = float((logits.argmax(1).cpu() == y.cpu()).float().mean())
        rev = float((logits.argmin(1).cpu() == y.cpu()).float().mean())
        if acc < 1.0 / logits.shape[1] and rev > 0.5:
            raise ValueError(
                f"the classifier's accuracy on the fit labels is {acc:.1%} (below chance) while its argmin is right "
                f"on {rev:.1%}: it looks like a raw RCE-trained network, whose logits are reversed. Wrap it in "
                "rce_art.ReverseLogits(net) or use RCETrainer(...).get_classifier(), so that inputs are scored "
                "under their predicted class"
            )

    @contextlib.contextmanager
    def eot_draw(self, draw: int) -> Iterator[None]:
        """Context in which the score uses random draw ``draw`` (``0``: the detector's own draw, what ``detect``
        scores with). Only `stochastic` detectors change; for the others this does nothing.

        Attacks with expectation over transformation average gradients over draws ``0..k-1``.
        """
        old = self._eot_draw
        self._eot_draw = int(draw)
        try:
            yield
        finally:
            self._eot_draw = old

    @staticmethod
    def _fit_data(x: Any, y: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        """``(x, y)`` as arrays when ``x`` is a DataLoader / Dataset (labels from its items unless ``y`` is given); the
        input keyword arguments (``x_calibration``, ``x_clean``, ...) too, in place.

        Raises:
            ValueError: If no labels are given or found.
        """
        for k in ("x_calibration", "x_clean", "x_adv", "x_noisy"):
            if is_data_source(kwargs.get(k)):
                kwargs[k] = materialise(kwargs[k], k)[0]
        if is_data_source(x):
            x, found = materialise(x, "x")
            y = found if y is None else y
        return x, y

    # ------------------------------------------------------------------ fitting
    def fit(self, x: Any, y: Any = None, batch_size: int | None = None, nb_epochs: int = 0,
            **kwargs: Any) -> ScoreDetector:
        """Fit on clean training data and calibrate the threshold: the one template of the family.

        In order: the keyword arguments and inputs are checked (one clear error before any work); the classes are
        read from a forward pass; a raw (unreversed) RCE network is refused; the fit rows and the calibration rows
        are chosen (``_fit_split``: without ``x_calibration``, a ``calibration_fraction`` of ``x`` is held out of
        the fit, with a `CalibrationWarning`); the detector learns its state (``_fit_state``); the threshold is
        calibrated on ``x_calibration`` or the held-out rows; what it was fitted on is recorded in ``provenance_``.

        Args:
            x: Training inputs ``(N, *input_shape)`` in the classifier's pixel range, or a ``DataLoader`` /
                ``Dataset`` yielding ``(x, y)`` (then ``y`` may be omitted).
            y: Their true labels, ``(N,)`` integers or ``(N, L)`` one-hot.
            batch_size: Batch size of the forward passes (default: the constructor's).
            nb_epochs: Ignored (ART signature; nothing is trained).
            **kwargs: ``x_calibration``: held-out clean inputs for the threshold; and the detector's own
                (`fit_kwargs`, e.g. ``x_adv`` / ``x_clean`` for a combiner).

        Returns:
            ``self``.

        Raises:
            TypeError: On an unknown keyword argument.
            ValueError: On invalid inputs or labels, missing labels, or a raw (unreversed) RCE network.
        """
        unknown = set(kwargs) - self.fit_kwargs
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}; fit accepts {sorted(self.fit_kwargs)}")
        x, y = self._fit_data(x, y, kwargs)
        if y is None and self.fit_needs_labels:
            raise ValueError("fit needs labels y (or a DataLoader / Dataset yielding (x, y))")
        self._check_x(x)
        x = to_numpy(x).astype(np.float32, copy=False)
        self._check_fit_kwargs(kwargs)
        logits = self.extract(x[:256], batch_size)[0]
        self.nb_classes_ = int(logits.shape[1])
        y_int = None if y is None else check_labels(y, x.shape[0], self.nb_classes_)
        if y_int is not None:
            self.check_reverse_network(logits, torch.as_tensor(y_int[:256]))  # a raw RCE network scores nonsense
        x_cal = kwargs.get("x_calibration")
        if x_cal is None:
            self._warn_uncalibrated()
        fit_idx, cal_idx = self._fit_split(x, y_int, x_cal is None)
        self.provenance_ = {}
        self._fit_state(x, y_int, fit_idx, batch_size, kwargs)
        self.calibrate(x[cal_idx] if x_cal is None else x_cal, batch_size=batch_size)
        self.provenance_.update(self._fit_provenance(x, fit_idx, x_cal is not None))
        return self

    def _check_fit_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Raise on inconsistent keyword arguments of [`fit`][] before any work (subclasses extend)."""

    def _fit_split(self, x: np.ndarray, y: np.ndarray | None, hold_out: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(fit rows, calibration rows)`` of ``x``; with ``hold_out``, a seeded ``calibration_fraction`` of the rows
        is held out of the fit for the threshold (the calibration rows are unused otherwise)."""
        n = x.shape[0]
        if not hold_out:
            return np.arange(n), np.arange(0)
        perm = np.random.default_rng(self.seed).permutation(n)
        n_cal = max(1, round(float(self.calibration_fraction) * n))
        return np.sort(perm[n_cal:]), perm[:n_cal]

    def _fit_state(self, x: np.ndarray, y: np.ndarray | None, fit_idx: np.ndarray, batch_size: int | None,
                   kwargs: dict[str, Any]) -> None:
        """Learn the detector's state from the fit rows ``x[fit_idx]`` (and the detector's own keyword arguments)."""
        raise NotImplementedError

    def _fit_provenance(self, x: np.ndarray, fit_idx: np.ndarray, given: bool) -> dict[str, Any]:
        """What the fit saw, recorded after calibration (``given``: ``x_calibration`` was passed)."""
        return {"n_fit": int(fit_idx.size), "calibration": "x_calibration" if given else
                f"{self.calibration_fraction:.0%} of the fit data held out"}

    def _warn_uncalibrated(self) -> None:
        """Warn that the threshold is about to be set on inputs drawn from ``fit``'s own (training) inputs."""
        warnings.warn(
            f"{type(self).__name__}.fit: no x_calibration was given, so the threshold is calibrated on inputs drawn "
            "from x, which are usually the classifier's training inputs: the model is more confident on them than on "
            f"unseen data, so the realised false-positive rate on new clean inputs will exceed fpr={self.fpr} "
            "(measured on digits at a nominal 0.05: up to 0.13). Pass held-out clean inputs the model was not trained "
            "on: fit(x_train, y_train, x_calibration=x_heldout)",
            CalibrationWarning, stacklevel=3)

    # ---------------------------------------------------------------- scoring
    def score_features(self, logits: Tensor, features: Tensor) -> Tensor:
        """Differentiable score ``(N,)`` from logits and features (higher = more normal)."""
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``load``) has run and nothing has invalidated it since."""
        return hasattr(self, "threshold_")

    def check_fitted(self) -> None:
        """Raise [`NotFittedError`][rce_art.NotFittedError] before ``fit``."""
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(x_train, y_train) first")

    def logits_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Differentiable ``(logits (N, L), score (N,))`` of a raw input batch from one pass, no checks.

        For adaptive attacks' inner loops: the model stays in its current mode (attacks run it in eval mode).
        """
        logits, feats = self.logits_and_features(x)
        return logits, self.score_features(logits, feats)

    def score_tensor(self, x: Tensor) -> Tensor:
        """Differentiable score ``(N,)`` of a tensor batch, for adaptive attacks (model kept in its mode).

        Raises:
            NotFittedError: Before ``fit``.
            TypeError: If ``x`` is not a tensor.
        """
        self.check_fitted()
        if not isinstance(x, Tensor):
            raise TypeError(f"score_tensor takes a torch tensor (for gradients); got {type(x).__name__}, use score()")
        self._check_x(x)
        return self.score_features(*self.logits_and_features(x))

    def _scores_and_predictions(self, x: Any, batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        x = materialise(x)[0]  # arrays, tensors, or a DataLoader / Dataset of them
        logits, feats = self.extract(x, batch_size)
        with torch.no_grad():
            scores = self.score_features(logits, feats)
        return to_numpy(scores).astype(np.float64), to_numpy(logits.argmax(1))

    def score(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """Scores ``(N,)`` float64 (higher = more normal), in eval mode."""
        return self._scores_and_predictions(x, batch_size)[0]

    def calibrate(self, x: Any, fpr: float | None = None, batch_size: int | None = None) -> ScoreDetector:
        """Set ``threshold_`` so that a fraction ``fpr`` (default: ``self.fpr``) of clean ``x`` is flagged.

        Use held-out clean data the model was not trained on for an honest false-positive rate.
        Passing ``fpr`` also sets ``self.fpr``, so parameters and threshold never disagree.

        Returns:
            ``self``.
        """
        if fpr is not None:
            if not 0.0 <= float(fpr) < 1.0:
                raise ValueError(f"fpr must be in [0, 1), got {fpr}")
            self.fpr = float(fpr)
        scores = self.score(x, batch_size)
        self.calibration_scores_ = torch.as_tensor(np.sort(scores), dtype=torch.float64)
        self.threshold_ = calibrate_threshold(scores, self.fpr)
        self.fit_params_ = self._current_params()
        self.provenance_ = {**getattr(self, "provenance_", {}), "n_calibration": int(scores.size),
                            "feature_layer": getattr(self._model, "layer_name", None) or "logits_and_features"}
        return self

    def detect(self, x: Any, batch_size: int | None = None, **kwargs: Any) -> tuple[dict, np.ndarray]:
        """Flag inputs whose score is below ``threshold_``.

        Args:
            x: Inputs ``(N, *input_shape)`` (numpy or tensor, finite, in the pixel range).
            batch_size: Feature-extraction batch size.

        Returns:
            ``(report, is_adversarial)``: ``report`` has the scores ``(N,)`` under ``"score"`` (every detector) and
            under the detector's own ``report_key`` (e.g. ``"log_density"``), ``"predicted_class"`` ``(N,)`` and
            ``"threshold"``; ``is_adversarial`` is a boolean ``(N,)`` array.

        Raises:
            NotFittedError: Before ``fit``.
            TypeError: If ``x`` is not a floating array or tensor, or on an unknown keyword argument.
            ValueError: On an empty batch, NaN/inf, a wrong shape or out-of-range pixels.
        """
        if kwargs:
            raise TypeError(f"detect got unexpected keyword arguments {sorted(kwargs)}; it accepts x and batch_size")
        scores, pred = self._scores_and_predictions(x, batch_size)
        report = {"score": scores, self.report_key: scores, "predicted_class": pred, "threshold": self.threshold_}
        return report, is_flagged(scores, self.threshold_)

    def predict_or_reject(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """Predicted labels, with ``-1`` ("NOT SURE", Pang et al. Section 3.3) for flagged inputs."""
        report, flagged = self.detect(x, batch_size)
        return np.where(flagged, -1, report["predicted_class"])

    # ----------------------------------------------------------- parameters
    def _current_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.defence_params if k != "classifier"}

    def set_params(self, **kwargs: Any) -> None:
        """Set constructor parameters, keeping the detector coherent (ART's ``set_params``).

        Changing ``classifier`` or ``layer`` rebinds the model; changing any of ``fit_params`` after
        ``fit`` discards the fitted state (with a warning: call ``fit`` again); changing ``fpr`` after
        ``fit`` recalibrates the threshold from the stored clean calibration scores.

        Raises:
            ValueError: On an unknown parameter or an invalid value (nothing is changed then).
        """
        unknown = set(kwargs) - set(self.defence_params)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}; {type(self).__name__} has {self.defence_params}")
        old = {k: getattr(self, k) for k in kwargs}
        for k, v in kwargs.items():
            setattr(self, k, v)
        try:
            self._check_params()
            if "classifier" in kwargs or "layer" in kwargs:
                self._bind()
        except Exception:
            for k, v in old.items():
                setattr(self, k, v)
            raise
        changed = [k for k in kwargs if old[k] is not kwargs[k] and not _equal(old[k], kwargs[k])]
        if not self.is_fitted:
            return
        if any(k in self.fit_params for k in changed):
            self._clear_fitted()
            warnings.warn(f"{type(self).__name__}: {sorted(set(changed) & set(self.fit_params))} changed after fit; "
                          "the fitted state was discarded, call fit again", stacklevel=2)
        elif "fpr" in changed and self.calibration_scores_.numel() > 0:
            self.threshold_ = calibrate_threshold(self.calibration_scores_.numpy(), float(self.fpr))
            self.fit_params_ = self._current_params()
        elif changed:
            self.fit_params_ = self._current_params()

    def _clear_fitted(self) -> None:
        for k in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, k)

    # ----------------------------------------------------------- persistence
    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """JSON scalars and tensors of the fitted state (subclasses extend)."""
        return {"threshold_": self.threshold_}, {"calibration_scores_": self.calibration_scores_}

    def _restore_state(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        self.threshold_ = float(meta["threshold_"])
        self.calibration_scores_ = tensors["calibration_scores_"]

    def save(self, path: str | Path) -> None:
        """Save the fitted state as safetensors (tensors) with JSON metadata; never pickled.

        The parameters written are those in force when the detector was fitted / calibrated
        (``fit_params_``), with what it was fitted and calibrated on (``provenance_``).

        Raises:
            NotFittedError: Before ``fit``.
        """
        self.check_fitted()
        meta, tensors = self._fitted_state()
        save_state(path, self.format_tag, {"params": self.fit_params_, "fitted": meta,
                                           "provenance": getattr(self, "provenance_", {}),
                                           "model": model_fingerprint(self._view.model)}, tensors)

    @classmethod
    def load(cls, path: str | Path, classifier: Any, strict: bool = True) -> ScoreDetector:
        """Load a detector saved by [`save`][] and attach it to ``classifier`` (the model it was fitted on).

        The file holds a fingerprint of that model (architecture and a digest of its weights): another
        architecture is refused, other weights are refused (``strict``) or warned about.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            ValueError: If the file is not a detector of this class, or was fitted on another model.
        """
        meta, tensors = load_state(path, cls.format_tag)
        check_fingerprint(path, meta.get("model"), resolve_model(classifier).model, strict)
        det = cls(classifier, **meta["params"])
        det._restore_state(meta["fitted"], tensors)
        det.fit_params_ = det._current_params()
        det.provenance_ = meta.get("provenance", {})
        return det

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._current_params().items())})"


ScoreDetector._derive_params()


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 (arrays, modules: compared by identity only)
        return False
