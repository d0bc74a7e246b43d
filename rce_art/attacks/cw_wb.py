"""C&W-wb: Carlini & Wagner's L2 attack with a K-density detector term (white-box, adaptive).

Pang et al. (2018), Section 4.4 and Appendix B.4; Carlini & Wagner, "Adversarial Examples Are
Not Easily Detected" (AISec 2017), Section 5.2. One batched torch implementation: tanh-space
variables, Adam, a binary search on ``c`` per example and per phase, early abort.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
from rce_art.detectors.kernel import KernelBank, class_log_kdensity, loo_log_kdensity
from rce_art.settings import cw_wb_settings

__all__ = ["CWResult", "CarliniWagnerWB", "detector_term", "margin_term"]

_QUICK = cw_wb_settings(paper=False)


def margin_term(logits: Tensor, labels: Tensor, kappa: float, targeted: bool) -> Tensor:
    """C&W's classification term in its non-negative form (Carlini & Wagner 2017, ``f_6``; Pang et al. Sec. 2.3).

    Targeted: ``max(max_{i != t} Z_i - Z_t + kappa, 0)``; untargeted: ``max(Z_y - max_{i != y} Z_i + kappa, 0)``.
    ``f = 0`` exactly when the target (or another) class wins by a logit margin of at least ``kappa``.
    Being non-negative, the attack loss ``||d||^2 + c f + c f2`` falls to a floor, which early abort needs.
    """
    own = logits.gather(1, labels[:, None])[:, 0]
    other = logits.masked_fill(torch.zeros_like(logits, dtype=torch.bool).scatter_(1, labels[:, None], True),
                               float("-inf")).amax(1)
    diff = other - own if targeted else own - other
    return (diff + kappa).clamp_min(0.0)


def detector_term(log_kd: Tensor, eta: Tensor) -> Tensor:
    """The detector term ``f2(x*) = max(-log KD(x*) - eta, 0)`` (Pang et al. 2018, Section 4.4).

    ``f2 <= 0`` means the K-density of ``x*`` under its class is at least ``exp(-eta)``; with
    ``eta`` the median of ``-log KD`` over that class's training points, ``x*`` is then at least
    as typical as half of them.
    """
    return (-log_kd - eta).clamp_min(0.0)


@dataclass
class CWResult:
    """Outcome of [`CarliniWagnerWB.run`][CarliniWagnerWB.run], one entry per input.

    Attributes:
        x_adv: The returned example (see [`CarliniWagnerWB`][], "Returned example"), ``(N, ...)``.
        success: ``x_adv`` meets the classification goal with margin ``kappa`` AND ``f2 <= 0``.
        misclassified: ``x_adv`` meets the classification goal (false only where ``x_adv`` is the input).
        f2: Detector term at ``x_adv``.
        l2: ``||x_adv - x||_2`` in pixel units (0 where ``x_adv`` is the input).
        phase1_x_adv: Result of phase 1 (plain C&W-L2; the input where it failed).
    """

    x_adv: Tensor
    success: Tensor
    misclassified: Tensor
    f2: Tensor
    l2: Tensor
    phase1_x_adv: Tensor


@dataclass
class _Search:
    """Per-input bookkeeping of one phase's binary search."""

    best: Tensor  # smallest-L2 iterate meeting every test of the phase
    best_l2: Tensor
    fallback: Tensor  # classification goal met, smallest f2 (phase 2 only)
    fallback_f2: Tensor
    fallback_l2: Tensor

    @property
    def found(self) -> Tensor:
        return torch.isfinite(self.best_l2)

    @property
    def classified(self) -> Tensor:
        return torch.isfinite(self.fallback_l2)


class CarliniWagnerWB(SignatureParams):
    """Two-phase C&W-L2 attack that also fools a [`KDensityDetector`][rce_art.detectors.KDensityDetector].

    Minimises ``||x* - x||^2 + c * f(x*) + c * f2(x*)`` (Pang et al. 2018, Sec. 4.4), where ``f``
    is C&W's logit margin ([`margin_term`][]) and ``f2`` the detector term
    ([`detector_term`][]) under the target class (targeted) or the predicted class (untargeted).
    Phase 1 is a plain C&W-L2 toward the goal with its own binary search (from ``phase1_const``);
    phase 2 starts from its result, adds ``f2`` and searches from ``initial_const``. The defaults of
    both searches follow the authors' code (phase 1: ``c = 10``, 3 rounds; phase 2: ``c = 100``,
    9 rounds); ``max_iter`` and ``learning_rate`` are quick ones (``rce_art.settings.cw_wb_settings``
    has the paper's 10,000 steps of 0.01). The model runs in eval mode; its mode is restored.

    **Returned example** (per input): the phase-2 iterate with the smallest L2 distance among those
    that pass both tests (classification goal with margin ``kappa`` on the logits, and ``f2 <= 0``);
    where none passes both, the phase-2 iterate that meets the classification goal with the smallest
    ``f2`` (ties: smaller L2), as the authors' code returns; where no phase-2 iterate meets the goal
    (phase 1 failed too), the input itself. Distortions in the paper's Table 3 average over the
    inputs that pass both tests (``CWResult.success``).

    Success follows Carlini's convention: the classification goal is met on the *logits* (the
    authors' code checks it on softmax probabilities, where ``kappa > 1`` can never pass).

    Args:
        confidence: ``kappa`` (0 for C&W-wb, 5 for the high-confidence variant of Table 6).
        binary_search_steps: Rounds of phase 2's binary search on ``c`` (authors' code: 9).
        max_iter: Adam steps per round, both phases.
        learning_rate: Adam step size in tanh space (paper: 0.01 over 10,000 iterations; the quicker
            default budget needs a larger step, since pixels at the bounds start deep in tanh saturation).
        initial_const: First ``c`` of phase 2 (authors' code: 100).
        phase1_const: First ``c`` of phase 1 (authors' code: 10).
        phase1_search_steps: Rounds of phase 1's binary search (authors' code: 3).
        abort_early: Stop a round when no example's (non-negative) loss improved by 0.01% over a tenth of it.
        kernel_per_class: Training points per class in the attacker's kernel (the paper's code:
            100); ``None`` uses the detector's whole kernel.
        eta: Detector margin per class; ``None`` = median of ``-log KD`` over the detector's
            kernel points of that class, under the attacker's kernel, each point leaving itself out.
        two_phase: Run phase 1 first (the paper's procedure); if false, only phase 2 from the input.
        targeted: ``labels`` are target classes (else true labels), as in every rce-art attack's constructor.

    References:
        N. Carlini, D. Wagner. Adversarial Examples Are Not Easily Detected: Bypassing Ten
        Detection Methods. AISec 2017. T. Pang et al. NeurIPS 2018, Sec. 4.4 and App. B.4.
    """

    def __init__(
        self,
        confidence: float = 0.0,
        binary_search_steps: int = _QUICK["binary_search_steps"],
        max_iter: int = _QUICK["max_iter"],
        learning_rate: float = _QUICK["learning_rate"],
        initial_const: float = _QUICK["initial_const"],
        phase1_const: float = _QUICK["phase1_const"],
        phase1_search_steps: int = _QUICK["phase1_search_steps"],
        abort_early: bool = True,
        kernel_per_class: int | None = 100,
        eta: Sequence[float] | None = None,
        two_phase: bool = True,
        targeted: bool = False,
    ) -> None:
        if not (isinstance(confidence, (int, float)) and math.isfinite(confidence) and confidence >= 0):
            raise ValueError(f"confidence (kappa) must be a finite number >= 0, got {confidence!r}")
        for name, v in (("binary_search_steps", binary_search_steps), ("max_iter", max_iter),
                        ("phase1_search_steps", phase1_search_steps)):
            check_integer(v, name, 1)
        check_positive(learning_rate, "learning_rate")
        check_positive(initial_const, "initial_const")
        check_positive(phase1_const, "phase1_const")
        if kernel_per_class is not None:
            check_integer(kernel_per_class, "kernel_per_class", 1)
        self.confidence = float(confidence)
        self.binary_search_steps = binary_search_steps
        self.max_iter = max_iter
        self.learning_rate = float(learning_rate)
        self.initial_const = float(initial_const)
        self.phase1_const = float(phase1_const)
        self.phase1_search_steps = phase1_search_steps
        self.abort_early = bool(abort_early)
        self.kernel_per_class = kernel_per_class
        self.eta = None if eta is None else [float(e) for e in eta]
        self.two_phase = bool(two_phase)
        self.targeted = bool(targeted)

    # ----------------------------------------------------------------- detector
    def attacker_kernels(self, detector: Any) -> list[Tensor]:
        """Per-class kernel the attacker uses: the first ``kernel_per_class`` of the detector's (sampled) points."""
        return [k if self.kernel_per_class is None else k[: self.kernel_per_class] for k in detector.kernels()]

    def etas(self, detector: Any, kernels: list[Tensor]) -> Tensor:
        """``eta`` per class: given, or the median of ``-log KD`` over the detector's kernel points of the class,
        each scored under the attacker's kernel leaving itself out ([`loo_log_kdensity`][rce_art.detectors.loo_log_kdensity])."""
        if self.eta is not None:
            if len(self.eta) != len(kernels):
                raise ValueError(f"eta has {len(self.eta)} values for {len(kernels)} classes")
            return torch.tensor(self.eta)
        out = []
        for full, k in zip(detector.kernels(), kernels):
            neg = -loo_log_kdensity(full, k, detector.bandwidth_)
            out.append(neg[torch.isfinite(neg)].median())
        return torch.stack(out).float().cpu()

    # ---------------------------------------------------------------------- run
    def generate(self, detector: Any, x: Any, labels: Any = None, targeted: bool | None = None, batch_size: int = 128,
                 verbose: bool = False, progress: bool | None = None) -> CWResult:
        """Attack ``x`` in batches of ``batch_size`` (see [`run`][]), with an optional progress bar
        showing examples done and the success rate so far. ``x`` may be a ``DataLoader`` / ``Dataset`` yielding
        ``(x, y)``: its labels are used unless ``labels`` is given.

        The call shape of every rce-art attack: ``generate(detector, x, labels, batch_size=..., verbose=...)``;
        ``targeted`` is the constructor's (passing it here is deprecated, removed in 0.8)."""
        from tqdm.auto import tqdm

        targeted = self._targeted(targeted)

        x, found = materialise(x, "x")
        labels = found if labels is None else labels
        if labels is None:
            raise ValueError("CarliniWagnerWB.generate needs labels (true labels, or targets when targeted)")
        x = torch.as_tensor(x, dtype=torch.float32)
        labels = torch.as_tensor(labels)
        parts: list[CWResult] = []
        done = ok = 0
        verbose = deprecated_progress(progress, verbose)
        with tqdm(total=x.shape[0], desc="C&W-wb", unit="ex", disable=not verbose, leave=False) as bar:
            for i in range(0, x.shape[0], batch_size):
                r = self._run(detector, x[i : i + batch_size], labels[i : i + batch_size], targeted)
                parts.append(r)
                done += r.success.numel()
                ok += int(r.success.sum())
                bar.update(r.success.numel())
                bar.set_postfix(success=f"{ok / done:.2%}")
        return CWResult(*(torch.cat([getattr(p, f) for p in parts]) for f in CWResult.__dataclass_fields__))

    def _targeted(self, targeted: bool | None) -> bool:
        if targeted is None:
            return self.targeted
        import warnings

        warnings.warn("passing targeted to CarliniWagnerWB.run / generate is deprecated (removed in rce-art 0.8): "
                      "pass it to the constructor, CarliniWagnerWB(..., targeted=True), as for DetectorPGD",
                      DeprecationWarning, stacklevel=3)
        return bool(targeted)

    def run(self, detector: Any, x: Tensor, labels: Tensor, targeted: bool | None = None) -> CWResult:
        """Attack a batch, with the detector's model in eval mode (its train/eval mode is restored after).

        Args:
            detector: A fitted [`KDensityDetector`][rce_art.detectors.KDensityDetector] (its classifier is the model).
            x: Clean inputs ``(N, ...)`` within the classifier's clip values.
            labels: Target classes (``targeted=True``) or true labels, ``(N,)``.
            targeted: Deprecated (removed in 0.8): the constructor's ``targeted`` says whether ``labels`` are targets.

        Returns:
            [`CWResult`][].

        Raises:
            NotFittedError: If the detector is not fitted.
            ValueError: On inputs outside the clip values, bad labels, or a classifier without clip values.
        """
        return self._run(detector, x, labels, self._targeted(targeted))

    def _run(self, detector: Any, x: Tensor, labels: Tensor, targeted: bool) -> CWResult:
        check_kdensity(detector)
        detector.check_fitted()
        clip = detector.clip_values
        if clip is None:
            raise ValueError("C&W-wb needs the classifier's clip_values (use an ART PyTorchClassifier)")
        check_inputs(x, name="x", clip_values=clip)
        device = detector.device
        x = torch.as_tensor(x, dtype=torch.float32).to(device)
        labels = torch.as_tensor(check_labels(labels, x.shape[0], detector.nb_classes_, name="labels")).to(device)
        kernels = [k.to(device) for k in self.attacker_kernels(detector)]
        eta = self.etas(detector, kernels).to(device)
        bank = KernelBank.from_kernels(kernels)

        def f2_of(logits: Tensor, feats: Tensor) -> Tensor:
            cls = labels if targeted else logits.detach().argmax(1)
            return detector_term(class_log_kdensity(feats, cls, bank, detector.bandwidth_), eta[cls])

        with eval_mode(detector.model):
            if self.two_phase:
                p1 = self._search(detector, x, x, labels, targeted, None, clip, self.phase1_const,
                                  self.phase1_search_steps)
                phase1 = torch.where(_rows(p1.found, x), p1.best, x)
            else:
                phase1 = x
            p2 = self._search(detector, x, phase1, labels, targeted, f2_of, clip, self.initial_const,
                              self.binary_search_steps)
            x_adv = torch.where(_rows(p2.found, x), p2.best, torch.where(_rows(p2.classified, x), p2.fallback, x))
            with torch.no_grad():
                logits, feats = detector.logits_and_features(x_adv)
                f2 = f2_of(logits, feats)
                mis = self._goal_met(logits, labels, targeted)
        success = mis & (f2 <= 0)
        l2 = (x_adv - x).flatten(1).norm(dim=1)
        return CWResult(x_adv.detach(), success, mis, f2, l2, phase1.detach())

    def _goal_met(self, logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
        pred = logits.argmax(1)
        hit = (pred == labels) if targeted else (pred != labels)
        return hit & (margin_term(logits, labels, self.confidence, targeted) <= 0)

    def _search(self, detector, x0, start, labels, targeted, f2_of, clip, const0: float, rounds: int) -> _Search:
        """One phase: binary search over ``c`` of Adam-in-tanh-space rounds, tracking the best iterates."""
        lo, hi = clip
        n, dev = x0.shape[0], x0.device

        def to_x(w: Tensor) -> Tensor:
            return lo + (hi - lo) * (torch.tanh(w) + 1.0) / 2.0

        w0 = torch.atanh(((start - lo) / (hi - lo) * 2.0 - 1.0).clamp(-1 + 1e-6, 1 - 1e-6))
        const = torch.full((n,), const0, device=dev)
        lower, upper = torch.zeros(n, device=dev), torch.full((n,), 1e10, device=dev)
        inf = torch.full((n,), math.inf, device=dev)
        s = _Search(start.clone(), inf.clone(), start.clone(), inf.clone(), inf.clone())
        check_every = max(self.max_iter // 10, 1)
        for _ in range(rounds):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=self.learning_rate)
            found = torch.zeros(n, dtype=torch.bool, device=dev)
            prev = inf.clone()
            for step in range(self.max_iter):
                xa = to_x(w)
                logits, feats = detector.logits_and_features(xa)
                l2sq = (xa - x0).flatten(1).pow(2).sum(1)
                loss_i = l2sq + const * margin_term(logits, labels, self.confidence, targeted)
                f2 = f2_of(logits, feats) if f2_of is not None else None
                if f2 is not None:
                    loss_i = loss_i + const * f2
                # the gradient of w only: no weight gradients computed, none left on the model's parameters
                w.grad = torch.autograd.grad(loss_i.sum(), w)[0]
                opt.step()
                with torch.no_grad():
                    goal = self._goal_met(logits.detach(), labels, targeted)
                    ok = goal & (f2.detach() <= 0) if f2 is not None else goal
                    self._keep(s, xa.detach(), l2sq.detach(), ok, goal, None if f2 is None else f2.detach())
                    found |= ok
                    if self.abort_early and step % check_every == check_every - 1:
                        if not bool((loss_i.detach() < prev * 0.9999).any()):
                            break
                        prev = loss_i.detach()
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            const = torch.where(upper < 1e9, (lower + upper) / 2.0, const * 10.0)
        return s

    @staticmethod
    def _keep(s: _Search, xa: Tensor, l2sq: Tensor, ok: Tensor, goal: Tensor, f2: Tensor | None) -> None:
        better = ok & (l2sq < s.best_l2)
        s.best_l2[better] = l2sq[better]
        s.best[better] = xa[better]
        if f2 is not None:
            fb = goal & ((f2 < s.fallback_f2) | ((f2 == s.fallback_f2) & (l2sq < s.fallback_l2)))
            s.fallback_f2[fb] = f2[fb]
            s.fallback_l2[fb] = l2sq[fb]
            s.fallback[fb] = xa[fb]


def _rows(mask: Tensor, like: Tensor) -> Tensor:
    """A per-row mask ``(N,)`` shaped to broadcast against ``like`` ``(N, ...)``."""
    return mask.view(-1, *([1] * (like.ndim - 1)))


def check_kdensity(detector: Any) -> None:
    """Raise a clear error unless ``detector`` is a K-density detector (what C&W-wb's term ``f2`` is defined on).

    Raises:
        TypeError: Naming the attacks that work on other detectors.
    """
    if not callable(getattr(type(detector), "kernels", None)):
        raise TypeError(
            f"C&W-wb attacks K-density detectors (rce_art.KDensityDetector): its detector term f2 is Pang et al.'s, on "
            f"the log-density of the predicted class's kernel; got {type(detector).__name__}. For any other detector use "
            "rce_art.DetectorPGD (modes 'selective', 'orthogonal', 'combined'), which attacks every differentiable "
            "ScoreDetector"
        )

