"""Base of detectors whose per-input characteristics are combined by a logistic regression (LID, KD+BU, Mahalanobis).

Fit steps and the data each sees:

1. ``fit(x, y, ...)`` — the unsupervised part (reference points, class statistics, kernels) on clean training
   data ``(x, y)``, minus a held-out ``calibration_fraction`` when no ``x_calibration`` is given;
2. the combiner — ``fit(..., x_adv=, x_clean=)`` or [`CombinedDetector.fit_combiner`][CombinedDetector.fit_combiner]: z-scoring and a
   logistic regression on the characteristics of ``x_clean`` (and noisy copies, ``x_noisy="auto"``: Gaussian
   noise matched to the attack's mean L2 distortion) vs ``x_adv``, crafted from ``x_clean`` with one attack;
3. the threshold — on held-out clean inputs (``x_calibration``), at the target false-positive rate.

Evaluate on inputs none of these steps saw: the scripts split first.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from rce_art._tensors import eval_mode
from rce_art._validation import materialise, to_numpy
from rce_art.detectors.base import ScoreDetector
from rce_art.detectors.combiner import LogisticCombiner, is_sparse_attack, matched_flip_noise, matched_gaussian_noise

__all__ = ["CombinedDetector"]


class CombinedDetector(ScoreDetector):
    """A detector scoring ``-logit`` of a logistic regression over characteristics ``(N, F)`` (higher = more normal).

    Subclasses implement [`characteristics`][] (differentiable), ``_fit_unsupervised`` and the persistence
    hooks ``_unsupervised_state`` / ``_restore_unsupervised``; with ``requires_combiner = False`` they also give
    ``_default_score`` used before a combiner is fitted.

    Attributes:
        combiner_ (LogisticCombiner): The fitted regression (after step 2).
        noise_std_ (float | None): Standard deviation of the noisy negatives, if any.
    """

    requires_combiner: ClassVar[bool] = True
    fit_kwargs: ClassVar[frozenset[str]] = frozenset({"x_calibration", "x_adv", "x_clean", "x_noisy", "attack"})
    #: Negatives besides the clean inputs when ``x_noisy`` is not given: ``"auto"`` (matched Gaussian noise, the
    #: recipes of Feinman et al. and Ma et al.) or ``None`` (clean inputs only, e.g. the ER paper's regression).
    default_x_noisy: ClassVar[str | None] = "auto"

    def _check_params(self) -> None:
        super()._check_params()
        if not 0.0 < float(self.calibration_fraction) < 1.0:
            raise ValueError(f"calibration_fraction must be in (0, 1), got {self.calibration_fraction}")

    def characteristics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Differentiable ``(logits (N, L), characteristics (N, F))`` of a raw input batch (model kept in its mode)."""
        raise NotImplementedError

    def _fit_unsupervised(self, x: np.ndarray, y: np.ndarray, batch_size: int | None) -> None:
        raise NotImplementedError

    def _default_score(self, ch: Tensor) -> Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------- fitting
    # fit: the base template; ``x_adv`` and ``x_clean`` (adversarial examples and the clean inputs they were crafted
    # from; required unless the detector has a default score), ``x_noisy`` (``"auto"``: matched Gaussian noise, an
    # array, or ``None``; default `default_x_noisy`) and ``attack`` (name recorded in the metadata) fit the combiner
    # after the unsupervised part, before the threshold.
    def _check_fit_kwargs(self, kwargs: dict[str, Any]) -> None:
        x_adv, x_clean = kwargs.get("x_adv"), kwargs.get("x_clean")
        if (x_adv is None) != (x_clean is None):
            raise ValueError("pass x_adv together with x_clean, the clean inputs it was crafted from")
        if x_adv is None and self.requires_combiner:
            raise ValueError(f"{type(self).__name__} combines its characteristics with a logistic regression: pass "
                             "x_adv (adversarial examples of one attack) and x_clean (their clean inputs) to fit")

    def _fit_state(self, x: np.ndarray, y: np.ndarray | None, fit_idx: np.ndarray, batch_size: int | None,
                   kwargs: dict[str, Any]) -> None:
        assert y is not None  # fit_needs_labels
        self._fit_unsupervised(x[fit_idx], y[fit_idx], batch_size)
        self.__dict__.pop("combiner_", None)
        self.noise_std_ = None
        self.threshold_ = float("-inf")
        self.calibration_scores_ = torch.zeros(0, dtype=torch.float64)
        self.provenance_ = {"n_fit": int(fit_idx.size)}
        if kwargs.get("x_adv") is not None:
            self.fit_combiner(kwargs["x_clean"], kwargs["x_adv"], kwargs.get("x_noisy", self.default_x_noisy),
                              kwargs.get("attack"), batch_size)

    def _fit_provenance(self, x: np.ndarray, fit_idx: np.ndarray, given: bool) -> dict[str, Any]:
        return {"calibration": "x_calibration" if given else f"{self.calibration_fraction:.0%} of the fit data held out"}

    def fit_combiner(self, x_clean: Any, x_adv: Any, x_noisy: Any = "default", attack: str | None = None,
                     batch_size: int | None = None) -> CombinedDetector:
        """Fit the logistic regression: clean (and noisy) inputs vs adversarial ones of one attack.

        Call `calibrate` afterwards (``fit`` does): the score, hence the threshold, changes.

        Args:
            x_clean: Clean inputs ``(N, ...)`` the adversarial examples were crafted from.
            x_adv: Adversarial examples ``(N, ...)``.
            x_noisy: ``"auto"`` (Gaussian noise with the attack's mean L2 distortion,
                [`matched_gaussian_noise`][rce_art.detectors.combiner.matched_gaussian_noise]; for a sparse, L0 attack such as JSMA,
                as many flipped pixels as it changed, [`matched_flip_noise`][rce_art.detectors.combiner.matched_flip_noise]), noisy
                inputs, ``None``, or ``"default"``: the detector's `default_x_noisy`.
            attack: Name of the attack, recorded in ``provenance_``.

        Returns:
            ``self``.
        """
        self._check_x(x_clean, "x_clean")
        self._check_x(x_adv, "x_adv")
        x_clean, x_adv = to_numpy(x_clean).astype(np.float32), to_numpy(x_adv).astype(np.float32)
        if x_clean.shape != x_adv.shape:
            raise ValueError(f"x_clean and x_adv must have one shape, got {x_clean.shape} and {x_adv.shape}")
        neg = [self._characteristics_batched(x_clean, batch_size)[1]]
        if isinstance(x_noisy, str) and x_noisy == "default":
            x_noisy = self.default_x_noisy
        if isinstance(x_noisy, str):
            if x_noisy != "auto":
                raise ValueError(f"x_noisy must be 'auto', an array or None, got {x_noisy!r}")
            if self.clip_values is None:
                raise ValueError("x_noisy='auto' needs the classifier's clip_values")
            if is_sparse_attack(x_clean, x_adv):  # L0 (JSMA): flip as many pixels, as Feinman et al.'s code
                x_noisy, flipped = matched_flip_noise(x_clean, x_adv, self.clip_values, self.seed)
                self.noise_std_, noise_kind = None, f"{flipped:.0f} pixels flipped to the range's ends"
            else:
                x_noisy, self.noise_std_ = matched_gaussian_noise(x_clean, x_adv, self.clip_values, self.seed)
                noise_kind = f"gaussian, std {self.noise_std_:.4g}"
        else:
            noise_kind = "given" if x_noisy is not None else "none"
        groups = [np.arange(len(x_clean))]
        if x_noisy is not None:
            self._check_x(x_noisy, "x_noisy")
            x_noisy = to_numpy(x_noisy).astype(np.float32)
            neg.append(self._characteristics_batched(x_noisy, batch_size)[1])
            paired = len(x_noisy) == len(x_clean)  # noisy copies of the clean inputs share their groups
            groups.append(np.arange(len(x_noisy)) + (0 if paired else len(x_clean)))
        pos = self._characteristics_batched(x_adv, batch_size)[1]
        groups.append(np.arange(len(x_adv)))  # an adversarial example shares its clean input's group
        self.combiner_ = LogisticCombiner(self.seed).fit(torch.cat(neg), pos, groups=np.concatenate(groups))
        self.provenance_ = {**getattr(self, "provenance_", {}), "combiner_attack": attack,
                            "combiner_rows": self.combiner_.n_fit_, "noise_std": self.noise_std_,
                            "noise": noise_kind}
        return self

    # ------------------------------------------------------------------- scoring
    def compute_characteristics(self, x: Any, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """``(logits (N, L), characteristics (N, F))`` of inputs, in eval mode, no gradient kept.

        The characteristics depend on the unsupervised fit only, not on the combiner: detectors fitted on the
        same data with different attacks share them, so a cross-attack evaluation computes them once and
        scores them with each combiner ([`score_characteristics`][]).
        """
        self.check_fitted()
        self._check_x(x)
        return self._characteristics_batched(to_numpy(x).astype(np.float32), batch_size)

    def score_characteristics(self, characteristics: Tensor) -> np.ndarray:
        """Scores ``(N,)`` (higher = more normal) of precomputed characteristics ``(N, F)``."""
        self.check_fitted()
        with torch.no_grad():
            return to_numpy(self._score_characteristics(characteristics.to(self.device))).astype(np.float64)

    def _score_characteristics(self, ch: Tensor) -> Tensor:
        if hasattr(self, "combiner_"):
            return -self.combiner_.logit(ch)
        if self.requires_combiner:
            raise ValueError(f"{type(self).__name__} has no combiner yet; call fit_combiner(x_clean, x_adv)")
        return self._default_score(ch)

    def _characteristics_batched(self, x: np.ndarray, batch_size: int | None) -> tuple[Tensor, Tensor]:
        bs = int(batch_size or self.batch_size)
        xt = torch.as_tensor(x, dtype=torch.float32)
        parts = []
        with eval_mode(self.model), torch.set_grad_enabled(self.needs_input_grad):
            for i in tqdm(range(0, xt.shape[0], bs), desc=type(self).__name__, disable=not self.verbose, leave=False):
                logits, ch = self.characteristics(xt[i : i + bs].to(self.device))
                parts.append((logits.detach(), ch.detach()))
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    #: Whether scoring needs gradients with respect to the input (Mahalanobis' input pre-processing).
    needs_input_grad: ClassVar[bool] = False

    def logits_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Differentiable ``(logits (N, L), score (N,))`` of a raw input batch, no checks (model kept in its mode)."""
        logits, ch = self.characteristics(x.to(self.device))
        return logits, self._score_characteristics(ch)

    def score_tensor(self, x: Tensor) -> Tensor:
        """Differentiable score ``(N,)`` of a tensor batch (higher = more normal), model kept in its mode."""
        self.check_fitted()
        if not isinstance(x, Tensor):
            raise TypeError(f"score_tensor takes a torch tensor (for gradients); got {type(x).__name__}, use score()")
        self._check_x(x)
        return self._score_characteristics(self.characteristics(x.to(self.device))[1])

    def _scores_and_predictions(self, x: Any, batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        x = materialise(x)[0]
        self._check_x(x)
        logits, ch = self._characteristics_batched(to_numpy(x).astype(np.float32), batch_size)
        with torch.no_grad():
            scores = self._score_characteristics(ch)
        return to_numpy(scores).astype(np.float64), to_numpy(logits.argmax(1))

    # --------------------------------------------------------------- persistence
    def _unsupervised_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        raise NotImplementedError

    def _restore_unsupervised(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        raise NotImplementedError

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        meta, tensors = super()._fitted_state()
        m, t = self._unsupervised_state()
        meta.update(m, nb_classes_=self.nb_classes_, noise_std_=self.noise_std_)
        tensors.update(t)
        if hasattr(self, "combiner_"):
            cm, ct = self.combiner_.state()
            meta["combiner"] = cm
            tensors.update(ct)
        return meta, tensors

    def _restore_state(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        self.nb_classes_ = int(meta["nb_classes_"])
        self.noise_std_ = meta.get("noise_std_")
        self._restore_unsupervised(meta, tensors)
        if "combiner" in meta:
            self.combiner_ = LogisticCombiner.from_state(meta["combiner"], tensors)
        super()._restore_state(meta, tensors)
