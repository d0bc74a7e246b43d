"""The detector as an extra class: a classifier and its detector as ONE classifier that any attack can attack.

Carlini & Wagner (2017, "Adversarial examples are not easily detected: bypassing ten detection methods", Section
3, the combined classifier G) attack a classifier F with a detector D through one classifier with L + 1 outputs:
the first L are F's logits and the extra one wins exactly when D flags the input. Any attack on classifiers then
attacks the pair, unchanged.

Here the extra logit is ``max_j Z_j(x) + (T - s(x)) / sigma`` (ours): ``s`` the detector's score (higher = more
normal), ``T`` its threshold, ``sigma`` a robust spread of the clean calibration scores (so the detector's margin
is in units comparable to the logits' whatever the score's scale). It is above every logit exactly when ``s < T``
(flagged), below exactly when not (strictness enforced in float32 without changing the gradient).

An untargeted success must avoid BOTH the true class and the extra class. Toolkits test success as ``argmax !=
y``, which would count "flagged" as a success; [`DetectorAsClass.folded`][] gives, for inputs of true class
``c``, the L-logit classifier in which the extra logit is merged into class ``c`` (``Z'_c = max(Z_c, Z_extra)``):
its ``argmax != c`` holds exactly when the input is classified as a wrong class AND not flagged, so every
toolkit's own success test, early stopping and best-iterate bookkeeping are right on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rce_art._validation import check_integer
from rce_art.detectors.calibration import calibrate_threshold, is_flagged

__all__ = ["DetectorAsClass", "fold_rows", "system_success"]


def fold_rows(outputs: Tensor, labels: Tensor) -> Tensor:
    """The ``(N, L + 1)`` outputs of a [`DetectorAsClass`][] folded per row: ``(N, L)`` logits in which each row's
    extra ("flagged") logit is merged into that row's own true class, ``Z'_y = max(Z_y, Z_extra)``.

    ``argmax Z' != y`` holds exactly when the input is classified as a wrong class AND not flagged, whatever the
    classes of the other rows, so one attack call covers a batch of mixed classes with the system's success test.
    Differentiable (through whichever of the two logits is larger).

    Args:
        outputs: ``(N, L + 1)`` system outputs.
        labels: ``(N,)`` true labels in ``[0, L)``.

    Returns:
        ``(N, L)`` folded logits.
    """
    n_classes = outputs.shape[1] - 1
    labels = labels.to(outputs.device).long()[:, None]
    merged = torch.maximum(outputs[:, :n_classes].gather(1, labels), outputs[:, n_classes:])
    return outputs[:, :n_classes].scatter(1, labels, merged)


def system_success(logits: Tensor, labels: Tensor, targeted: bool = False) -> Tensor:
    """Success of an attack on a [`DetectorAsClass`][] from its ``(N, L + 1)`` outputs, ``(N,)`` bool.

    Untargeted: the winning output is neither the true class nor the extra ("flagged") class. Targeted: the winning
    output is the target (never the extra class, which cannot be a target). The extra class never counts.
    """
    pred = logits.argmax(1)
    extra = logits.shape[1] - 1
    labels = labels.to(pred.device)
    return pred == labels if targeted else (pred != labels) & (pred != extra)


class DetectorAsClass(nn.Module):
    """A classifier and a fitted detector as one classifier with ``L + 1`` logits (raw inputs in, logits out).

    ``forward(x)`` applies the classifier's preprocessing (as ART's ``predict`` does) and returns ``(N, L + 1)``
    logits: the classifier's ``L`` ordinary logits and an extra one that wins exactly when the detector flags
    ``x`` at ``threshold`` (see the module docstring). It is differentiable wherever the detector's score is.
    With ``fold_into=c`` it returns the ``(N, L)`` folded form for inputs of true class ``c`` ([`folded`][]).

    Stochastic detectors (MC dropout): the output's value is always draw 0's (what ``detect`` computes, so the
    equivalence with the detector's flag holds); with ``eot_samples=k`` its gradient is the average over ``k``
    independent mask draws (expectation over transformation).

    Args:
        detector: A fitted [`ScoreDetector`][rce_art.ScoreDetector].
        threshold: Operating threshold (flagged when ``score < threshold``); default the detector's ``threshold_``.
        fpr: Instead of ``threshold``: the threshold calibrated on the detector's clean calibration scores for this
            false-positive rate.
        score_scale: ``sigma``; default the robust spread (interquartile range / 1.349) of the calibration scores
            (ours), 1 when that is zero.
        eot_samples: Mask draws averaged in the gradient of a stochastic detector.
        fold_into: ``None`` (L + 1 outputs) or a class index (L outputs, extra merged into that class).

    Raises:
        NotFittedError: If the detector is not fitted.
        ValueError: On both ``threshold`` and ``fpr``, a non-finite threshold, ``eot_samples < 1`` or a bad class.

    References:
        N. Carlini, D. Wagner. Adversarial Examples Are Not Easily Detected: Bypassing Ten Detection Methods.
        AISec 2017, Section 3 (the combined classifier G).
    """

    def __init__(self, detector: Any, threshold: float | None = None, *, fpr: float | None = None,
                 score_scale: float | None = None, eot_samples: int = 1, fold_into: int | None = None) -> None:
        super().__init__()
        detector.check_fitted()
        if threshold is not None and fpr is not None:
            raise ValueError("pass threshold or fpr, not both")
        cal = detector.calibration_scores_.double().cpu().numpy()
        if fpr is not None:
            threshold = calibrate_threshold(cal, float(fpr))
        t = float(detector.threshold_ if threshold is None else threshold)
        if not np.isfinite(t):
            raise ValueError(f"threshold must be finite, got {t}")
        if score_scale is None:
            q25, q75 = (np.quantile(cal, [0.25, 0.75]) if cal.size else (0.0, 0.0))
            score_scale = float(q75 - q25) / 1.349 or 1.0
        if not (np.isfinite(score_scale) and score_scale > 0):
            raise ValueError(f"score_scale must be a finite number > 0, got {score_scale!r}")
        check_integer(eot_samples, "eot_samples", 1)
        n = int(detector.nb_classes_)
        if fold_into is not None and not (isinstance(fold_into, (int, np.integer)) and 0 <= int(fold_into) < n):
            raise ValueError(f"fold_into must be a class index in [0, {n}), got {fold_into!r}")
        self.detector = detector
        self.network = detector.model  # registered: .eval() / .train() reach the classifier
        self.threshold, self.score_scale, self.eot_samples = t, float(score_scale), eot_samples
        self.fold_into = None if fold_into is None else int(fold_into)
        self.nb_classes = n
        #: Called as ``observer.see(x, logits, flagged)`` on every pass of [`logits_and_score`][] (every iterate of
        #: every attack on this system or its folded forms), when set; see
        #: [`SuccessObserver`][rce_art.evaluation.SuccessObserver].
        self.observer: Any = None

    # ------------------------------------------------------------------ forms
    def folded(self, label: int) -> DetectorAsClass:
        """The ``(N, L)`` form for inputs of true class ``label``: the extra logit merged into ``label``'s (sharing this
        system's observer)."""
        out = DetectorAsClass(self.detector, self.threshold, score_scale=self.score_scale,
                              eot_samples=self.eot_samples, fold_into=label)
        out.observer = self.observer
        return out

    def attack_per_class(self, x: Tensor, y: Tensor, attack: Callable[[DetectorAsClass, Tensor, Tensor], Any]
                         ) -> Tensor:
        """Run ``attack(folded_c, x_c, y_c)`` on the inputs of each true class ``c`` against [`folded`][]``(c)``, so
        that an untargeted attack's own success test (``argmax != y``) is the system's; results reassembled in order.

        Args:
            x: Inputs ``(N, ...)``.
            y: Their true labels ``(N,)``.
            attack: Returns candidate examples for its inputs (tensor or array, same shape).

        Returns:
            ``(N, ...)`` float32 tensor on ``x``'s device.
        """
        out = x.detach().clone()
        yc = torch.as_tensor(y).to(x.device)
        for c in torch.unique(yc).tolist():
            rows = (yc == c).nonzero()[:, 0]
            adv = attack(self.folded(int(c)), x[rows], yc[rows])
            out[rows] = torch.as_tensor(adv, dtype=out.dtype).to(out.device).reshape(out[rows].shape)
        return out

    def folded_logits(self, x: Tensor, labels: Tensor) -> Tensor:
        """``(N, L)`` logits of ``x`` folded per row into each row's true class ([`fold_rows`][]): one forward pass
        for a batch of mixed classes, whose ``argmax != labels`` is the system's success test.

        Raises:
            ValueError: On a system already folded into one class (``fold_into``): build it without.
        """
        if self.fold_into is not None:
            raise ValueError("folded_logits folds per row: call it on the unfolded system (fold_into=None)")
        return fold_rows(self(x), labels)

    @property
    def clip_values(self) -> tuple[float, float] | None:
        """The classifier's pixel range."""
        return self.detector.clip_values

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one input (the classifier's)."""
        return self.detector.view.input_shape

    @property
    def device(self) -> torch.device:
        """The classifier's device."""
        return self.detector.device

    def art_classifier(self) -> Any:
        """This module as an ART ``PyTorchClassifier`` (``L + 1`` classes, or ``L`` when folded).

        Its preprocessing is none (the module applies the classifier's own), its clip values and device are the
        classifier's.

        Raises:
            ValueError: If the classifier has no clip values or input shape (build it as an ART classifier).
        """
        from rce_art.models.estimator import make_art_classifier

        if self.clip_values is None or self.input_shape is None:
            raise ValueError("the detector's classifier needs clip_values and input_shape: fit the detector on an "
                             "ART classifier (rce_art.make_art_classifier)")
        n = self.nb_classes if self.fold_into is not None else self.nb_classes + 1
        return make_art_classifier(self, self.input_shape, n, self.clip_values,
                                   device_type="gpu" if self.device.type == "cuda" else "cpu")

    # ---------------------------------------------------------------- compute
    def logits_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Classifier logits ``(N, L)`` and detector score ``(N,)``: draw 0's values, EOT-averaged gradient."""
        logits, score = self.detector.logits_and_score(x)
        if self.eot_samples > 1 and getattr(self.detector, "stochastic", False):
            extra = []
            for i in range(1, self.eot_samples):
                with self.detector.eot_draw(i):
                    extra.append(self.detector.logits_and_score(x)[1])
            mean = (score + sum(extra)) / self.eot_samples
            score = score.detach() + (mean - mean.detach())  # value of draw 0, gradient of the average
        if self.observer is not None:
            self.observer.see(x, logits.detach(), self.flags(score))
        return logits, score

    def forward(self, x: Tensor) -> Tensor:
        logits, score = self.logits_and_score(x)
        flagged = self.flags(score)
        zmax = logits.amax(1)
        raw = zmax + ((self.threshold - score.double()) / self.score_scale).to(logits.dtype)
        # strict in float32 (no ties, no absorption of a tiny margin): above the top logit iff flagged
        up = torch.nextafter(zmax.detach(), torch.full_like(zmax, float("inf")))
        down = torch.nextafter(zmax.detach(), torch.full_like(zmax, float("-inf")))
        fixed = torch.where(flagged, torch.maximum(raw.detach(), up), torch.minimum(raw.detach(), down))
        z_extra = raw + (fixed - raw).detach()
        if self.fold_into is None:
            return torch.cat([logits, z_extra[:, None]], 1)
        c = self.fold_into
        merged = torch.maximum(logits[:, c], z_extra)
        return torch.cat([logits[:, :c], merged[:, None], logits[:, c + 1:]], 1)

    def flags(self, score: Tensor) -> Tensor:
        """Whether scores ``(N,)`` are flagged at this threshold: ``detect``'s own test, the float32 score against
        the float64 threshold, ``(N,)`` bool."""
        return is_flagged(score.detach(), self.threshold)

    @torch.no_grad()
    def flagged(self, x: Tensor) -> Tensor:
        """Whether the detector flags each input at this threshold (draw 0), ``(N,)`` bool."""
        return self.flags(self.detector.logits_and_score(x)[1])

    def extra_repr(self) -> str:
        return (f"detector={type(self.detector).__name__}, threshold={self.threshold:.6g}, "
                f"score_scale={self.score_scale:.4g}, eot_samples={self.eot_samples}, fold_into={self.fold_into}")
