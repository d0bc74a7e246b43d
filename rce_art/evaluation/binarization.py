"""The binarization test for detectors (Zimmermann, Brendel, Tramer, Carlini, NeurIPS 2022): can the attacks find
an adversarial example that is known to exist?

Per test input ``x``: points sampled inside the eps-ball (label 0, ``x`` among them) and points on its boundary
that the detector does NOT flag (label 1) are embedded with the network's final hidden features; a linear readout
trained on them separates the two, so the binarized classifier (network features -> readout) with the SAME detector
has an unflagged, misclassified example within the budget by construction. The evaluation's own attacks then attack
that system; a correct attack breaks ~every input. The **inverted test** asks for boundary points the detector DOES
flag and counts a success when the example is misclassified AND flagged (the system's score negated): it shows the
attacks really move the detector's score (a detector whose score ignores the input fails it).

One batched run covers all the tested inputs: each row is read out by the readout of the input it is closest to.
Settings where the reference implementation (google-research/active-adversarial-tests) leaves a choice: boundary
points at the corners of the L-inf ball (random signs, clipped to the pixel range) or on the L2 sphere, inner points
uniform in 0.95 eps, an unregularised logistic readout on 2 classes; ours: the numbers of points below.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rce_art._validation import check_inputs, check_labels
from rce_art.detectors.calibration import calibrate_threshold, is_flagged
from rce_art.evaluation.binarized_system import BinarizedSystem, Readouts
from rce_art.metrics import wilson_interval

__all__ = ["BinarizationResult", "binarization_test"]

INNER_POINTS, BOUNDARY_CANDIDATES, BOUNDARY_POINTS, VALIDATION_POINTS, ATTACK_POINTS = 10, 200, 20, 50, 40
"""Per input (ours): inner points (besides ``x``), boundary points drawn, boundary points kept for the readout
(those with the wanted flag), fresh points of each label for the validation accuracies, and how many of the boundary
points lean toward the classifier-only PGD example (the reference implementation adds such "boundary adversarials":
they are the points a detector flags, which the inverted test needs)."""
INNER_RADIUS = 0.95
"""Inner points are drawn within this fraction of eps (Zimmermann et al.'s eta)."""
EXPECTED_SUCCESS = 0.95
"""Below this success rate the test WARNs (ours; a correct attack breaks ~every input)."""


@dataclass
class BinarizationResult:
    """The binarization test's outcome on the inputs it could be set up for.

    Attributes:
        index: Indices (into ``x``) of the inputs tested.
        success: ``(n,)`` bool, the attacks broke the binarized system on that input.
        validation_inner: ``(n,)`` readout accuracy on fresh inner points (label 0).
        validation_boundary: ``(n,)`` readout accuracy on fresh boundary points with the wanted flag (label 1).
        setup_failed: ``{reason: count}`` of the inputs the test could not be set up for.
        inverted: Whether this is the inverted test (success = misclassified AND flagged).
        attacks: Per attack, its record from the ensemble (attacked, broken, skipped, ...).
    """

    index: np.ndarray
    success: np.ndarray
    validation_inner: np.ndarray
    validation_boundary: np.ndarray
    setup_failed: dict[str, int] = field(default_factory=dict)
    inverted: bool = False
    attacks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return int(sum(self.setup_failed.values()))

    def rate(self) -> tuple[float, float, float, int]:
        """``(success rate, Wilson low, Wilson high, n)`` over the inputs tested."""
        k, n = int(self.success.sum()), int(self.success.size)
        lo, hi = wilson_interval(k, n)
        return (k / n if n else float("nan")), lo, hi, n

    def passed(self, expected: float = EXPECTED_SUCCESS) -> bool:
        """PASS: at least one input tested and a success rate of at least ``expected``."""
        rate, _, _, n = self.rate()
        return n > 0 and rate >= expected

    def evidence(self) -> str:
        rate, lo, hi, n = self.rate()
        what = "misclassified AND flagged" if self.inverted else "misclassified AND not flagged"
        failed = ", ".join(f"{c} {r}" for r, c in self.setup_failed.items()) or "none"
        return (f"{int(self.success.sum())} of {n} binarized inputs broken ({what}): {rate:.2f} [{lo:.2f}, {hi:.2f}], "
                f"expect >= {EXPECTED_SUCCESS}; readout validation accuracy inner {_mean(self.validation_inner):.2f}, "
                f"boundary {_mean(self.validation_boundary):.2f}; setup failed: {failed}")

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index.tolist(), "success": self.success.tolist(), "inverted": self.inverted,
                "validation_inner": self.validation_inner.tolist(),
                "validation_boundary": self.validation_boundary.tolist(), "setup_failed": self.setup_failed,
                "attacks": self.attacks}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BinarizationResult:
        return cls(np.asarray(d["index"], int), np.asarray(d["success"], bool), np.asarray(d["validation_inner"]),
                   np.asarray(d["validation_boundary"]), dict(d["setup_failed"]), bool(d["inverted"]),
                   list(d["attacks"]))


def _mean(a: np.ndarray) -> float:
    return float(np.mean(a)) if a.size else float("nan")


def _sample(x: Tensor, n: int, eps: float, norm: str, clip: tuple[float, float], g: torch.Generator,
            boundary: bool) -> Tensor:
    """``n`` points around ``x``: on the ball's boundary (L-inf corners / L2 sphere) or inside ``INNER_RADIUS`` eps."""
    shape = (n, *x.shape)
    if norm == "linf":
        if boundary:
            d = (torch.randint(0, 2, shape, generator=g).float() * 2 - 1) * eps
        else:
            d = (torch.rand(shape, generator=g) * 2 - 1) * eps * INNER_RADIUS
    else:
        d = torch.randn(shape, generator=g)
        d = d / d.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * x.dim()))
        r = torch.ones(n) if boundary else torch.rand(n, generator=g) ** (1.0 / x.numel()) * INNER_RADIUS
        d = d * (eps * r).view(-1, *([1] * x.dim()))
    return (x.cpu()[None] + d).clamp(*clip)


def _attack_directions(detector: Any, x: np.ndarray, y: np.ndarray, eps: float, norm: str, seed: int) -> Tensor:
    """Classifier-only PGD perturbations ``(n, ...)`` of ``x`` (the oblivious attack's direction from each input)."""
    from rce_art.attacks.detector_pgd import DetectorPGD

    if len(x) == 0:
        return torch.zeros(0, *x.shape[1:])
    r = DetectorPGD(eps, norm=norm, mode="classifier", steps=20, seed=seed).run(detector, torch.as_tensor(x),
                                                                                 torch.as_tensor(y))
    return (r.x_adv.cpu() - torch.as_tensor(x)).float()


def _toward(x: Tensor, direction: Tensor, eps: float, norm: str, clip: tuple[float, float],
            g: torch.Generator) -> Tensor:
    """``ATTACK_POINTS`` boundary points leaning toward ``direction``: its L-inf corner with a growing share of the
    coordinates' signs drawn at random (L2: the direction scaled to eps, plus growing noise)."""
    k = torch.linspace(0.0, 0.5, ATTACK_POINTS).view(-1, *([1] * x.dim()))
    if norm == "linf":
        sign = torch.where(direction != 0, direction.sign(), torch.ones_like(direction))[None]
        rand = torch.randint(0, 2, (ATTACK_POINTS, *x.shape), generator=g).float() * 2 - 1
        pick = torch.rand((ATTACK_POINTS, *x.shape), generator=g) < k
        d = torch.where(pick, rand, sign) * eps
    else:
        unit = direction / direction.norm().clamp(min=1e-12)
        d = unit[None] + k * torch.randn((ATTACK_POINTS, *x.shape), generator=g) / (x.numel() ** 0.5)
        d = eps * d / d.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * x.dim()))
    return (x.cpu()[None] + d).clamp(*clip)


def _fit_readout(f0: np.ndarray, f1: np.ndarray) -> tuple[np.ndarray, float] | None:
    """An (almost) unregularised logistic readout separating ``f0`` (label 0) from ``f1`` (label 1), or ``None``
    when it does not separate them perfectly."""
    from sklearn.linear_model import LogisticRegression

    f = np.concatenate([f0, f1]).astype(np.float64)
    lab = np.r_[np.zeros(len(f0)), np.ones(len(f1))]
    mu, sd = f.mean(0), f.std(0) + 1e-8
    with warnings.catch_warnings():  # separable data: the unregularised fit does not "converge", by design
        warnings.simplefilter("ignore")
        lr = LogisticRegression(C=1e6, max_iter=5000).fit((f - mu) / sd, lab)
    w = lr.coef_[0] / sd
    b = float(lr.intercept_[0] - (mu * w).sum())
    z = f @ w + b
    return (w, b) if bool(((z > 0) == (lab == 1)).all()) else None


def binarization_test(detector: Any, x: Any, y: Any, attacks: Sequence[Any], *, threshold: float | None = None,
                      fpr: float | None = None, inverted: bool = False, n_inputs: int = 20, seed: int = 0,
                      batch_size: int = 256) -> BinarizationResult:
    """Run the binarization test (or its inverted form) of the classifier + ``detector`` against ``attacks``.

    Args:
        detector: A fitted rce-art detector.
        x: Clean inputs; the first ``n_inputs`` that are classified correctly and not flagged (inverted: all of the
            first ``n_inputs`` correctly classified) are tested.
        y: Their true labels.
        attacks: The ensemble's members ([`build_adaptive_attack`][rce_art.adapters.build_adaptive_attack]), sharing
            one ``eps`` and ``norm``; members that need more than 2 classes (APGD-DLR, APGD-T) are skipped.
        threshold: The operating threshold (default the detector's ``threshold_``).
        fpr: Instead of ``threshold``: the false-positive rate that fixes it on the calibration scores.
        inverted: Run the inverted test (boundary points the detector flags; success = misclassified AND flagged).
        n_inputs: Inputs tested (the issue's subsample; ours: 20).
        seed: Seed of the sampled points (the attacks keep their own seeds).
        batch_size: Rows per forward pass.

    Returns:
        [`BinarizationResult`][].

    Raises:
        NotFittedError: If the detector is not fitted.
        ValueError: On invalid inputs, labels or attacks, or both ``threshold`` and ``fpr``.

    References:
        R. S. Zimmermann, W. Brendel, F. Tramer, N. Carlini. Increasing Confidence in Adversarial Robustness
        Evaluations. NeurIPS 2022.

    Example:
        ```python
        from rce_art.adapters import build_adaptive_attack
        attacks = [build_adaptive_attack(a, 0.1) for a in ("apgd-ce", "pgd-selective", "square")]
        result = binarization_test(det, x_test, y_test, attacks, fpr=0.05)
        print(result.passed(), result.evidence())
        ```
    """
    from rce_art.evaluation.worst_case import WorstCaseEnsemble

    detector.check_fitted()
    if threshold is not None and fpr is not None:
        raise ValueError("pass threshold or fpr, not both")
    view = detector.view
    check_inputs(x, name="x", input_shape=view.input_shape, clip_values=view.clip_values)
    if view.clip_values is None:
        raise ValueError("the binarization test needs the classifier's clip_values (use an ART classifier)")
    x = np.asarray(x, np.float32)
    y = check_labels(y, len(x), int(detector.nb_classes_))
    ensemble = WorstCaseEnsemble(list(attacks), batch_size=batch_size)
    eps, norm, clip = ensemble.eps, ensemble.norm, (float(view.clip_values[0]), float(view.clip_values[1]))
    if fpr is not None:
        threshold = calibrate_threshold(detector.calibration_scores_.double().cpu().numpy(), float(fpr))
    t = float(detector.threshold_ if threshold is None else threshold)
    report, _ = detector.detect(x)
    usable = (report["predicted_class"] == y) & (~is_flagged(report["score"], t) | inverted)
    chosen = np.flatnonzero(usable)[: int(n_inputs)]
    g = torch.Generator().manual_seed(int(seed))
    toward = _attack_directions(detector, x[chosen], y[chosen], eps, norm, seed)
    failed: dict[str, int] = {}
    kept, weights, biases, v_in, v_bd = [], [], [], [], []
    for pos, i in enumerate(chosen):
        xi = torch.as_tensor(x[i])
        pts = [xi[None], _sample(xi, INNER_POINTS + VALIDATION_POINTS, eps, norm, clip, g, False),
               _toward(xi, toward[pos], eps, norm, clip, g),
               _sample(xi, BOUNDARY_CANDIDATES - ATTACK_POINTS, eps, norm, clip, g, True)]
        feats, flags = _features_and_flags(detector, torch.cat(pts), t, batch_size)
        n_in = 1 + INNER_POINTS
        inner_f, inner_val = feats[:n_in], feats[n_in : n_in + VALIDATION_POINTS]
        bnd = np.flatnonzero(flags[n_in + VALIDATION_POINTS :] == inverted) + n_in + VALIDATION_POINTS
        if bnd.size < 2:
            reason = "no flagged point on the boundary" if inverted else "no unflagged point on the boundary"
            failed[reason] = failed.get(reason, 0) + 1
            continue
        n_fit = min(BOUNDARY_POINTS, max(1, bnd.size // 2))
        fit = _fit_readout(inner_f, feats[bnd[:n_fit]])
        if fit is None:
            failed["readout does not separate"] = failed.get("readout does not separate", 0) + 1
            continue
        w, b = fit
        kept.append(i)
        weights.append(w)
        biases.append(b)
        v_in.append(float(((inner_val @ w + b) <= 0).mean()))
        v_bd.append(float(((feats[bnd[n_fit:]] @ w + b) > 0).mean()))
    if not kept:
        return BinarizationResult(np.zeros(0, int), np.zeros(0, bool), np.zeros(0), np.zeros(0), failed, inverted)
    xs = torch.as_tensor(x[kept]).to(view.device)
    anchors = view.preprocess(xs).detach()
    readouts = Readouts(detector.model, anchors, torch.as_tensor(np.stack(weights), dtype=torch.float32),
                         torch.as_tensor(np.asarray(biases), dtype=torch.float32)).to(view.device)
    system = BinarizedSystem(detector, readouts, t, inverted)
    r = ensemble.run(system, xs.cpu().numpy(), np.zeros(len(kept), int))
    return BinarizationResult(np.asarray(kept, int), r.broken.astype(bool), np.asarray(v_in), np.asarray(v_bd),
                              failed, inverted, [{k: v for k, v in a.items() if k != "seconds"} for a in r.per_attack])


def _features_and_flags(detector: Any, pts: Tensor, threshold: float, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Final hidden features ``(M, D)`` and the detector's flags ``(M,)`` at ``threshold`` of raw points."""
    feats = detector.extract(pts.numpy(), batch_size)[1]
    report, _ = detector.detect(pts.numpy(), batch_size)
    return feats.double().cpu().numpy(), is_flagged(report["score"], threshold)
