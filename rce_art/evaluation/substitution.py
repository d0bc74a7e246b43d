"""A trivial-substitution lower bound on attack success: a real input of another class inside the eps-ball.

If a clean input ``x'`` lies within ``eps`` of ``x``, the system predicts ``x'`` as a class other than ``x``'s true
label and the detector does not flag it, then ``x'`` itself is a successful adversarial example for ``x``: no attack
is needed. Where such a substitute exists but the attacks left ``x`` unbroken, the attacks are demonstrably too weak
at that budget (ours, in the spirit of the active tests of Zimmermann et al. 2022). Such pairs are rare at small
budgets and common at large ones: the check matters most on the success-vs-eps curve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rce_art._validation import check_inputs, check_labels
from rce_art.detectors.calibration import calibrate_threshold, is_flagged

__all__ = ["nearest_substitutes", "trivial_substitutes"]


def nearest_substitutes(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, candidate_pred: np.ndarray,
                        candidate_flagged: np.ndarray, norm: str = "linf", exclude: np.ndarray | None = None,
                        batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per input, the closest candidate that is a successful adversarial example for it as it stands.

    A candidate ``c`` substitutes for input ``i`` when it is predicted as a class other than ``y[i]`` and not flagged.

    Args:
        x: Inputs ``(N, ...)``.
        y: Their true labels ``(N,)``.
        candidates: Clean inputs ``(M, ...)`` of the same shape (e.g. the other test inputs, held-out inputs).
        candidate_pred: The system's predicted class of each candidate ``(M,)``.
        candidate_flagged: Whether the detector flags each candidate ``(M,)`` at the operating threshold.
        norm: ``"linf"`` or ``"l2"`` (the distance, in pixel units).
        exclude: ``(N,)`` index of a candidate that is input ``i`` itself (never its own substitute), or ``-1``.
        batch_size: Inputs per distance computation.

    Returns:
        ``(distance (N,), index (N,))``: the distance to the closest substitute and its index (``inf`` / ``-1`` where
        no candidate substitutes).

    Raises:
        ValueError: On an unknown norm or mismatched shapes.
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    xf = torch.as_tensor(np.asarray(x, np.float32)).flatten(1)
    cf = torch.as_tensor(np.asarray(candidates, np.float32)).flatten(1)
    if xf.shape[1] != cf.shape[1]:
        raise ValueError(f"inputs and candidates differ in shape: {x.shape[1:]} vs {candidates.shape[1:]}")
    pred = torch.as_tensor(np.asarray(candidate_pred, np.int64))
    ok = ~torch.as_tensor(np.asarray(candidate_flagged, bool))
    yt = torch.as_tensor(np.asarray(y, np.int64))
    p = float("inf") if norm == "linf" else 2.0
    dist, index = np.full(len(xf), np.inf), np.full(len(xf), -1)
    for s in range(0, len(xf), batch_size):
        d = torch.cdist(xf[s : s + batch_size].double(), cf.double(), p=p)
        valid = ok[None, :] & (pred[None, :] != yt[s : s + batch_size, None])
        if exclude is not None:
            ex = torch.as_tensor(np.asarray(exclude[s : s + batch_size], np.int64))
            rows = (ex >= 0).nonzero()[:, 0]
            valid[rows, ex[rows]] = False
        d = torch.where(valid, d, torch.full_like(d, float("inf")))
        best, j = d.min(1)
        dist[s : s + batch_size] = best.numpy()
        index[s : s + batch_size] = np.where(np.isfinite(best.numpy()), j.numpy(), -1)
    return dist, index


def trivial_substitutes(detector: Any, x: Any, y: Any, candidates: Any, *, threshold: float | None = None,
                        fpr: float | None = None, norm: str = "linf", candidates_include_x: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per input, the distance to the closest clean input that already is a successful adversarial example for it
    against the classifier + ``detector`` (see the module docstring): a lower bound on what any attack must break.

    An input whose substitute lies within ``eps`` must be broken by any correct attack at ``eps``.

    Args:
        detector: A fitted rce-art detector (its classifier is the one attacked).
        x: Inputs ``(N, ...)`` within the clip values.
        y: Their true labels ``(N,)``.
        candidates: Clean inputs ``(M, ...)`` to search (labels not needed: a candidate counts when predicted as another
            class than the input's and not flagged).
        threshold: The operating threshold (default the detector's ``threshold_``).
        fpr: Instead of ``threshold``: the false-positive rate that fixes it on the detector's calibration scores.
        norm: ``"linf"`` or ``"l2"``.
        candidates_include_x: The first ``N`` candidates are ``x`` itself, in order (they are not their own
            substitutes).

    Returns:
        ``(distance (N,), index (N,))`` as [`nearest_substitutes`][].

    Raises:
        NotFittedError: If the detector is not fitted.
        ValueError: On invalid inputs or labels, or both ``threshold`` and ``fpr``.

    Example:
        ```python
        dist, idx = trivial_substitutes(det, x_test, y_test, np.concatenate([x_test, x_heldout]), fpr=0.05,
                                        candidates_include_x=True)
        must_break = dist <= eps  # a correct attack at eps breaks every one of them
        ```
    """
    detector.check_fitted()
    if threshold is not None and fpr is not None:
        raise ValueError("pass threshold or fpr, not both")
    view = detector.view
    for arr, name in ((x, "x"), (candidates, "candidates")):
        check_inputs(arr, name=name, input_shape=view.input_shape, clip_values=view.clip_values)
    x, candidates = np.asarray(x, np.float32), np.asarray(candidates, np.float32)
    y = check_labels(y, len(x), int(detector.nb_classes_))
    if fpr is not None:
        threshold = calibrate_threshold(detector.calibration_scores_.double().cpu().numpy(), float(fpr))
    t = float(detector.threshold_ if threshold is None else threshold)
    report, _ = detector.detect(candidates)
    exclude = np.arange(len(x)) if candidates_include_x else None
    return nearest_substitutes(x, y, candidates, report["predicted_class"], is_flagged(report["score"], t), norm,
                               exclude)
