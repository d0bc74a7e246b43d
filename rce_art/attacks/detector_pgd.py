"""Fixed-budget PGD against a classifier and its detector: combined, selective and orthogonal PGD.

Bryniarski, Hingun, Pachuca, Wang, Carlini. "Evading Adversarial Example Detection Defenses with Orthogonal
Projected Gradient Descent", ICLR 2022, Section 4. One batched torch implementation for every detector of the
family, through its differentiable ``logits_and_score``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rce_art._signature import SignatureParams
from rce_art._tensors import eval_mode
from rce_art._validation import (
    check_inputs,
    check_integer,
    check_labels,
    check_positive,
    deprecated_progress,
    materialise,
)

__all__ = ["DetectorPGD", "DetectorPGDResult", "classifier_logits", "classifier_margin", "orthogonalise", "project"]

MODES = ("orthogonal", "selective", "combined", "classifier")
NORMS = ("linf", "l2")


def classifier_margin(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """``Z_y - max_{i != y} Z_i`` (untargeted) or ``max_{i != t} Z_i - Z_t`` (targeted), ``(N,)``.

    Negative exactly when the goal is met (misclassified / target reached); the attacks minimise it.
    """
    own = logits.gather(1, labels[:, None])[:, 0]
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, labels[:, None], True)
    other = logits.masked_fill(mask, float("-inf")).amax(1)
    return other - own if targeted else own - other


def classifier_logits(detector: Any, x: Tensor) -> Tensor:
    """Ordinary logits ``(N, L)`` of the detector's classifier on raw inputs (its preprocessing applied), computed
    without the detector: what the oblivious (classifier-only) attack sees."""
    view = detector.view
    return view.model(view.preprocess(x.to(view.device)))


def project(x_adv: Tensor, x: Tensor, eps: float, norm: str, clip: tuple[float, float]) -> Tensor:
    """``x_adv`` projected onto the ``eps`` ball around ``x`` (``"linf"`` or ``"l2"``, per example) and the pixel
    range ``clip``."""
    d = x_adv - x
    if norm == "linf":
        d = d.clamp(-eps, eps)
    else:
        n = d.flatten(1).norm(dim=1).clamp_min(1e-12)
        d = d * (eps / n).clamp_max(1.0).view(-1, *([1] * (d.ndim - 1)))
    return (x + d).clamp(clip[0], clip[1])


def orthogonalise(g: Tensor, other: Tensor) -> Tensor:
    """``g`` minus its component along ``other``, per example (rows of ``(N, ...)`` tensors) (Bryniarski et al. eq. 3)."""
    gf, of = g.flatten(1), other.flatten(1)
    coef = (gf * of).sum(1) / (of * of).sum(1).clamp_min(1e-30)
    return (gf - coef[:, None] * of).view_as(g)


@dataclass
class DetectorPGDResult:
    """Outcome per input of [`DetectorPGD.run`][DetectorPGD.run].

    Attributes:
        x_adv: The misclassified iterate with the highest detector score seen (the most normal-looking); in the
            oblivious ``"classifier"`` mode, the misclassified iterate with the largest classifier margin
            ``max_{i != y} Z_i - Z_y`` (chosen without the detector); the last iterate where no iterate was
            misclassified, ``(N, ...)``.
        misclassified: Goal met at ``x_adv`` (misclassified, or target reached).
        score: Detector score at ``x_adv`` (higher = more normal), as ``detect`` computes it.
        linf: ``||x_adv - x||_inf`` (pixel units).
        l2: ``||x_adv - x||_2`` (pixel units).
    """

    x_adv: Tensor
    misclassified: Tensor
    score: Tensor
    linf: Tensor
    l2: Tensor


class DetectorPGD(SignatureParams):
    """PGD within a fixed ``eps`` ball that fools a classifier and evades its detector.

    Objectives (minimised): the classifier margin ``m(x)`` ([`classifier_margin`][]) and the detector loss
    ``-score(x)`` (scores are higher = more normal). Modes:

    * ``"combined"``: ``m(x) - detector_weight * score(x)``;
    * ``"selective"``: per example, a step on ``m`` until the example is misclassified by ``margin``, then on
      ``-score`` only (and back on ``m`` if it becomes correct again);
    * ``"orthogonal"``: the same switch, with the chosen gradient's component along the other objective's
      gradient removed per example ([`orthogonalise`][]) before the step;
    * ``"classifier"``: ``m`` only, the oblivious baseline: the detector is never evaluated during the attack
      (its classifier's logits are computed directly, [`classifier_logits`][]), and the iterate returned is
      the misclassified one with the largest margin; the detector scores the returned examples once, for the
      report, so the examples are the same whatever detector is passed.

    Steps: ``l2``: ``step_size * g / ||g||_2``; ``linf``: ``step_size * sign(g)`` in the combined and classifier
    modes, and in the selective and orthogonal modes ``g`` scaled to the L2 length of a sign step,
    ``step_size * sqrt(d) * g / ||g||_2`` (ours: a ``sign`` after the projection would break the orthogonality).
    Each step is projected onto the ``eps`` ball and the clip values. Per input, the misclassified iterate with
    the highest detector score seen is returned (not the last one), over ``restarts`` random starts. The model
    runs in eval mode; its mode is restored.

    Stochastic detectors (MC dropout, ``detector.stochastic``) score an input with one fixed set of masks (draw
    0); with ``eot_samples=k`` the gradients are averaged over ``k`` independent mask draws ``0..k-1``
    (expectation over transformation), while the best-iterate bookkeeping uses draw 0, the score ``detect``
    computes.

    Args:
        eps: Budget in pixel units (``linf`` or ``l2``).
        norm: ``"linf"`` or ``"l2"``.
        mode: One of ``"orthogonal"``, ``"selective"``, ``"combined"``, ``"classifier"``.
        steps: Iterations per restart.
        step_size: Step length (default ``eps / 10`` for ``linf``, ``eps / 5`` for ``l2``; ours).
        margin: Logit margin past which selective / orthogonal PGD switches to the detector (0.05, as Bryniarski
            et al.'s reference code, which adds 0.05 to the true class's logit before testing success).
        detector_weight: Weight of the detector term in the combined mode.
        restarts: Random restarts (the first starts at the input when ``random_start`` is false).
        random_start: Start uniformly in the ball.
        targeted: ``labels`` are targets.
        eot_samples: Gradients averaged over this many independent random draws of a stochastic detector
            (expectation over transformation); for deterministic detectors every draw is the same.
        seed: Seed of the random starts (a local generator; the global state is untouched).

    References:
        O. Bryniarski, N. Hingun, P. Pachuca, V. Wang, N. Carlini. Evading Adversarial Example Detection Defenses
        with Orthogonal Projected Gradient Descent. ICLR 2022, Section 4.
    """

    def __init__(self, eps: float, norm: str = "linf", mode: str = "orthogonal", steps: int = 100,
                 step_size: float | None = None, margin: float = 0.05, detector_weight: float = 1.0, restarts: int = 1,
                 random_start: bool = True, targeted: bool = False, eot_samples: int = 1, seed: int = 0) -> None:
        check_positive(eps, "eps")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        for name, v in (("steps", steps), ("restarts", restarts), ("eot_samples", eot_samples)):
            check_integer(v, name, 1)
        if step_size is not None:
            check_positive(step_size, "step_size")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
        if not (math.isfinite(detector_weight) and detector_weight >= 0):
            raise ValueError(f"detector_weight must be a finite number >= 0, got {detector_weight!r}")
        self.eps, self.norm, self.mode, self.steps = float(eps), norm, mode, steps
        self.step_size = float(step_size) if step_size is not None else self.eps / (10.0 if norm == "linf" else 5.0)
        self.margin, self.detector_weight, self.restarts = float(margin), float(detector_weight), restarts
        self.random_start, self.targeted, self.eot_samples, self.seed = bool(random_start), bool(targeted), eot_samples, seed

    # ------------------------------------------------------------------ pieces
    def _project(self, x_adv: Tensor, x: Tensor, clip: tuple[float, float]) -> Tensor:
        return project(x_adv, x, self.eps, self.norm, clip)

    def _start(self, x: Tensor, g: torch.Generator, restart: int, clip: tuple[float, float]) -> Tensor:
        if not self.random_start and restart == 0:
            return x.clone()
        u = torch.rand(x.shape, generator=g).to(x.device) * 2 - 1
        if self.norm == "l2":
            u = u / u.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
            u = u * torch.rand(x.shape[0], generator=g).to(x.device).view(-1, *([1] * (x.ndim - 1)))
        return self._project(x + self.eps * u, x, clip)

    def _step(self, g: Tensor, use_sign: bool) -> Tensor:
        if self.norm == "l2":
            return self.step_size * g / g.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (g.ndim - 1)))
        if use_sign:
            return self.step_size * g.sign()
        # the direction of g, with the L2 length of a sign step (step_size * sqrt(d)): it moves pixels about as far
        # as sign(g) would, without the sign that would undo the orthogonal projection
        d = g[0].numel()
        return self.step_size * math.sqrt(d) * g / g.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (g.ndim - 1)))

    def gradients(self, detector: Any, x: Tensor, labels: Tensor, need_grad: bool = True
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor]:
        """``(grad of m, grad of -score, m, score, logits)`` at ``x``.

        Gradients are averaged over ``eot_samples`` draws (``detector.eot_draw(i)``, ``i = 0..k-1``); ``m``, ``score``
        and ``logits`` are draw 0's. In the classifier mode the detector is not evaluated: the second gradient is
        zero and ``score`` is ``None``. In the combined mode the first gradient is that of the combined objective
        and the second zero. In the selective mode each row needs one of the two gradients (the one its switch
        picks, decided by draw 0's margin): both returned tensors hold that gradient, from one backward pass. Only
        the orthogonal mode computes both. ``need_grad=False`` (the last step): values only, zero gradients, no
        backward pass."""
        if not need_grad:
            with torch.no_grad():
                if self.mode == "classifier":
                    logits, score = classifier_logits(detector, x), None
                else:
                    logits, score = detector.logits_and_score(x)
                m = classifier_margin(logits, labels, self.targeted)
            zero = torch.zeros_like(x)
            return zero, zero, m, score, logits
        if self.mode == "classifier":
            xr = x.detach().requires_grad_(True)
            logits = classifier_logits(detector, xr)
            m = classifier_margin(logits, labels, self.targeted)
            gm, _ = _two_grads(m, None, xr)
            return gm, torch.zeros_like(x), m.detach(), None, logits.detach()
        gm = torch.zeros_like(x)
        gd = torch.zeros_like(x)
        draw = getattr(detector, "eot_draw", None)
        first: tuple[Tensor, Tensor, Tensor] | None = None
        on_detector: Tensor | None = None
        for i in range(self.eot_samples):
            xr = x.detach().requires_grad_(True)
            with draw(i) if draw is not None else contextlib.nullcontext():
                logits, score = detector.logits_and_score(xr)
            m = classifier_margin(logits, labels, self.targeted)
            if on_detector is None:
                on_detector = m.detach() < -self.margin
            if self.mode == "combined":
                g1, g2 = _two_grads(m - self.detector_weight * score, None, xr)
            elif self.mode == "selective":  # each row's own objective: one backward, both outputs hold it
                g1, _ = _two_grads(torch.where(on_detector, -score, m), None, xr)
                g2 = g1
            else:
                g1, g2 = _two_grads(m, -score, xr)
            gm += g1 / self.eot_samples
            gd += g2 / self.eot_samples
            if first is None:
                first = (m.detach(), score.detach(), logits.detach())
        assert first is not None
        return gm, gd, *first

    # ---------------------------------------------------------------------- run
    def run(self, detector: Any, x: Tensor, labels: Tensor) -> DetectorPGDResult:
        """Attack a batch. ``labels``: true labels (untargeted) or targets (``targeted=True``).

        Raises:
            NotFittedError: If the detector is not fitted.
            ValueError: On inputs outside the clip values or bad labels, or a classifier without clip values.
        """
        detector.check_fitted()
        clip = detector.clip_values
        if clip is None:
            raise ValueError("DetectorPGD needs the classifier's clip_values (use an ART PyTorchClassifier)")
        check_inputs(x, name="x", clip_values=clip)
        x = torch.as_tensor(x, dtype=torch.float32).to(detector.device)
        labels = torch.as_tensor(check_labels(labels, x.shape[0], detector.nb_classes_, name="labels")).to(x.device)
        g = torch.Generator().manual_seed(self.seed)
        n = x.shape[0]
        best = x.clone()
        best_key = torch.full((n,), -math.inf, device=x.device)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        last = x.clone()
        with eval_mode(detector.model):
            for restart in range(self.restarts):
                xa = self._start(x, g, restart, clip)
                for step in range(self.steps + 1):
                    gm, gd, m, score, _ = self.gradients(detector, xa, labels, need_grad=step < self.steps)
                    ok = m < 0
                    key = -m if score is None else score  # oblivious: chosen by the classifier alone
                    better = ok & (key > best_key)
                    best[better], best_key[better] = xa[better], key[better].to(best_key.dtype)
                    found |= ok
                    if step == self.steps:
                        break
                    xa = self._project(xa - self._direction(gm, gd, m), x, clip).detach()
                last = torch.where(found.view(-1, *([1] * (x.ndim - 1))), last, xa)
            x_adv = torch.where(found.view(-1, *([1] * (x.ndim - 1))), best, last)
            with torch.no_grad():  # the report: the returned examples as detect() scores them
                logits, score = detector.logits_and_score(x_adv)
                mis = classifier_margin(logits, labels, self.targeted) < 0
        d = (x_adv - x).flatten(1)
        return DetectorPGDResult(x_adv.detach(), mis, score.detach(), d.abs().amax(1), d.norm(dim=1))

    def _direction(self, gm: Tensor, gd: Tensor, m: Tensor) -> Tensor:
        """The descent step of the mode, per example."""
        if self.mode == "classifier":
            return self._step(gm, use_sign=True)
        if self.mode == "combined":
            return self._step(gm + self.detector_weight * gd, use_sign=True)
        on_detector = (m < -self.margin).view(-1, *([1] * (gm.ndim - 1)))
        if self.mode == "orthogonal":
            g = torch.where(on_detector, orthogonalise(gd, gm), orthogonalise(gm, gd))
        else:
            g = torch.where(on_detector, gd, gm)
        return self._step(g, use_sign=False)

    def generate(self, detector: Any, x: Any, labels: Any = None, batch_size: int = 128, verbose: bool = False,
                 progress: bool | None = None) -> DetectorPGDResult:
        """Attack ``x`` in batches (see [`run`][]), with an optional progress bar.

        ``x`` may be a ``DataLoader`` / ``Dataset`` yielding ``(x, y)``: its labels are used unless ``labels`` is given.

        Raises:
            ValueError: Without labels (none given, none in the loader's items).
        """
        from tqdm.auto import tqdm

        x, found = materialise(x, "x")
        labels = found if labels is None else labels
        if labels is None:
            raise ValueError("DetectorPGD.generate needs labels (true labels, or targets when targeted)")
        x, labels = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(labels)
        parts = [self.run(detector, x[i : i + batch_size], labels[i : i + batch_size])
                 for i in tqdm(range(0, x.shape[0], batch_size), desc=f"PGD[{self.mode}]",
                               disable=not deprecated_progress(progress, verbose),
                               leave=False)]
        return DetectorPGDResult(*(torch.cat([getattr(p, f) for p in parts]) for f in DetectorPGDResult.__dataclass_fields__))


def _two_grads(a: Tensor, b: Tensor | None, x: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of ``a.sum()`` and ``b.sum()`` with respect to ``x`` (zeros where one does not depend on ``x``,
    or for ``b = None``)."""
    ga = torch.autograd.grad(a.sum(), x, retain_graph=b is not None, allow_unused=True)[0]
    gb = None if b is None else torch.autograd.grad(b.sum(), x, allow_unused=True)[0]
    return (torch.zeros_like(x) if ga is None else ga), (torch.zeros_like(x) if gb is None else gb)
