"""C&W-wb: Carlini & Wagner's L2 attack with a K-density detector term (white-box, adaptive).

Pang et al. (2018), Section 4.4 and Appendix B.4; Carlini & Wagner, "Adversarial Examples Are
Not Easily Detected" (AISec 2017), Section 5.2. One batched torch implementation: tanh-space
variables, Adam, a binary search on ``c`` per example, early abort, and the best example kept per
input among those that satisfy both the classification and the detector condition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rce_art._validation import check_inputs, check_labels, check_positive

__all__ = ["CWResult", "CarliniWagnerWB", "detector_term", "margin_term"]


def margin_term(logits: Tensor, labels: Tensor, kappa: float, targeted: bool) -> Tensor:
    """C&W's ``f`` on logits (Carlini & Wagner 2017b, their ``f_6``; Pang et al. Sec. 2.3).

    Targeted: ``max(max_{i != t} Z_i - Z_t, -kappa)``; untargeted: ``max(Z_y - max_{i != y} Z_i, -kappa)``.
    ``f <= -kappa`` exactly when the (target / other) class wins by a logit margin of at least ``kappa``.
    """
    own = logits.gather(1, labels[:, None])[:, 0]
    other = logits.masked_fill(torch.zeros_like(logits, dtype=torch.bool).scatter_(1, labels[:, None], True),
                               float("-inf")).amax(1)
    diff = other - own if targeted else own - other
    return diff.clamp_min(-kappa)


def detector_term(log_kd: Tensor, eta: Tensor) -> Tensor:
    """The detector term ``f2(x*) = max(-log KD(x*) - eta, 0)`` (Pang et al. 2018, Section 4.4).

    ``f2 <= 0`` means the K-density of ``x*`` under its class is at least ``exp(-eta)``; with
    ``eta`` the median of ``-log KD`` over that class's training points, ``x*`` is then at least
    as typical as half of them.
    """
    return (-log_kd - eta).clamp_min(0.0)


@dataclass
class CWResult:
    """Outcome of :meth:`CarliniWagnerWB.run`, one entry per input.

    Attributes:
        x_adv: Best adversarial inputs (the input itself where none was found), ``(N, ...)``.
        success: Classified as the target (targeted) or misclassified (untargeted) with margin
            ``kappa``, and ``f2 <= 0`` (undetected at ``eta``).
        misclassified: The classification condition alone.
        f2: Detector term at ``x_adv``.
        l2: ``||x_adv - x||_2`` in pixel units (``inf`` where no success).
        phase1_x_adv: Result of phase 1 (plain C&W-L2).
    """

    x_adv: Tensor
    success: Tensor
    misclassified: Tensor
    f2: Tensor
    l2: Tensor
    phase1_x_adv: Tensor


class CarliniWagnerWB:
    """Two-phase C&W-L2 attack that also fools a :class:`~rce_art.detectors.KDensityDetector`.

    Minimises ``||x* - x||^2 + c * f(x*) + c * f2(x*)`` (Pang et al. 2018, Sec. 4.4), where ``f``
    is C&W's logit margin (:func:`margin_term`) and ``f2`` the detector term
    (:func:`detector_term`) under the target class (targeted) or the predicted class (untargeted).
    Phase 1 is a plain C&W-L2 toward the goal; phase 2 starts from its result and adds ``f2``.
    Success follows Carlini's convention: the classification goal is met on the *logits* (margin
    ``kappa``; the paper's code checks it on softmax probabilities, where ``kappa > 1`` can never
    pass) and ``f2 <= 0``.

    Args:
        confidence: ``kappa`` (0 for C&W-wb, 5 for the high-confidence variant of Table 6).
        binary_search_steps: Rounds of the binary search on ``c``, per phase.
        max_iter: Adam steps per round.
        learning_rate: Adam step size in tanh space (paper: 0.01 over 10,000 iterations; the quicker
            default budget needs a larger step, since pixels at the bounds start deep in tanh saturation).
        initial_const: First ``c`` of the search.
        abort_early: Stop a round when no example's loss improved by 0.01% over a tenth of it.
        kernel_per_class: Training points per class in the attacker's kernel (the paper's code:
            100); ``None`` uses the detector's whole kernel.
        eta: Detector margin per class; ``None`` = median of ``-log KD`` over the detector's
            kernel points of that class, under the attacker's kernel.
        two_phase: Run phase 1 first (the paper's procedure); if false, only the joint phase.

    References:
        N. Carlini, D. Wagner. Adversarial Examples Are Not Easily Detected: Bypassing Ten
        Detection Methods. AISec 2017. T. Pang et al. NeurIPS 2018, Sec. 4.4 and App. B.4.
    """

    def __init__(
        self,
        confidence: float = 0.0,
        binary_search_steps: int = 5,
        max_iter: int = 200,
        learning_rate: float = 0.05,
        initial_const: float = 1e-2,
        abort_early: bool = True,
        kernel_per_class: int | None = 100,
        eta: Sequence[float] | None = None,
        two_phase: bool = True,
    ) -> None:
        if not (isinstance(confidence, (int, float)) and math.isfinite(confidence) and confidence >= 0):
            raise ValueError(f"confidence (kappa) must be a finite number >= 0, got {confidence!r}")
        for name, v in (("binary_search_steps", binary_search_steps), ("max_iter", max_iter)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        check_positive(learning_rate, "learning_rate")
        check_positive(initial_const, "initial_const")
        if kernel_per_class is not None and (not isinstance(kernel_per_class, int) or kernel_per_class < 1):
            raise ValueError(f"kernel_per_class must be a positive integer or None, got {kernel_per_class!r}")
        self.confidence = float(confidence)
        self.binary_search_steps = binary_search_steps
        self.max_iter = max_iter
        self.learning_rate = float(learning_rate)
        self.initial_const = float(initial_const)
        self.abort_early = bool(abort_early)
        self.kernel_per_class = kernel_per_class
        self.eta = None if eta is None else [float(e) for e in eta]
        self.two_phase = bool(two_phase)

    def params(self) -> dict:
        """The constructor arguments, e.g. to build a variant: ``CarliniWagnerWB(**{**a.params(), "max_iter": 50})``."""
        keys = ("confidence", "binary_search_steps", "max_iter", "learning_rate", "initial_const", "abort_early",
                "kernel_per_class", "eta", "two_phase")
        return {k: getattr(self, k) for k in keys}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"

    # ----------------------------------------------------------------- detector
    def attacker_kernels(self, detector) -> list[Tensor]:
        """Per-class kernel the attacker uses: the first ``kernel_per_class`` of the detector's (randomly sampled) points."""
        return [k if self.kernel_per_class is None else k[: self.kernel_per_class] for k in detector.kernels()]

    def etas(self, detector, kernels: list[Tensor]) -> Tensor:
        """``eta`` per class: given, or the median of ``-log KD`` over the detector's kernel points of the class.

        Each point is scored under the attacker's kernel *without itself* (pairs at distance zero
        are left out), so points shared by both kernels are not flattered by their own term.
        """
        from rce_art.detectors.kernel import squared_distances

        if self.eta is not None:
            if len(self.eta) != len(kernels):
                raise ValueError(f"eta has {len(self.eta)} values for {len(kernels)} classes")
            return torch.tensor(self.eta)
        out = []
        with torch.no_grad():
            for full, k in zip(detector.kernels(), kernels):
                d2 = squared_distances(full.double(), k.double())
                d2 = d2.masked_fill(d2 <= 1e-12 * float(d2.max().clamp_min(1e-30)), float("inf"))
                n_other = torch.isfinite(d2).sum(1).clamp_min(1).double()
                neg_log_kd = -(torch.logsumexp(-d2 / detector.bandwidth_**2, dim=1) - n_other.log())
                out.append(neg_log_kd[torch.isfinite(neg_log_kd)].median())
        return torch.stack(out).float().cpu()

    # ---------------------------------------------------------------------- run
    def generate(self, detector, x, labels, targeted: bool = False, batch_size: int = 128,
                 progress: bool = False) -> CWResult:
        """Attack ``x`` in batches of ``batch_size`` (see :meth:`run`), with an optional progress bar
        showing examples done and the success rate so far."""
        from tqdm.auto import tqdm

        x = torch.as_tensor(x, dtype=torch.float32)
        labels = torch.as_tensor(labels)
        parts: list[CWResult] = []
        done = ok = 0
        with tqdm(total=x.shape[0], desc="C&W-wb", unit="ex", disable=not progress, leave=False) as bar:
            for i in range(0, x.shape[0], batch_size):
                r = self.run(detector, x[i : i + batch_size], labels[i : i + batch_size], targeted)
                parts.append(r)
                done += r.success.numel()
                ok += int(r.success.sum())
                bar.update(r.success.numel())
                bar.set_postfix(success=f"{ok / done:.2%}")
        return CWResult(*(torch.cat([getattr(p, f) for p in parts]) for f in CWResult.__dataclass_fields__))

    def run(self, detector, x: Tensor, labels: Tensor, targeted: bool = False) -> CWResult:
        """Attack a batch.

        Args:
            detector: A fitted :class:`~rce_art.detectors.KDensityDetector` (its classifier is the model).
            x: Clean inputs ``(N, ...)`` within the classifier's clip values.
            labels: Target classes (``targeted=True``) or true labels, ``(N,)``.
            targeted: Whether ``labels`` are targets.

        Returns:
            :class:`CWResult`.
        """
        detector._check_fitted()
        clip = detector.clip_values
        if clip is None:
            raise ValueError("C&W-wb needs the classifier's clip_values (use an ART PyTorchClassifier)")
        check_inputs(x, name="x", clip_values=clip)
        device = detector.device
        x = torch.as_tensor(x, dtype=torch.float32).to(device)
        labels = torch.as_tensor(check_labels(labels, x.shape[0], detector.nb_classes_, name="labels")).to(device)
        kernels = [k.to(device) for k in self.attacker_kernels(detector)]
        eta = self.etas(detector, kernels).to(device)
        from rce_art.detectors.kernel import KernelBank, class_log_kdensity

        bank = KernelBank.from_kernels(kernels)

        def log_kd(feats: Tensor, cls: Tensor) -> Tensor:
            return class_log_kdensity(feats, cls, bank, detector.bandwidth_)

        # Phase 1 (plain C&W-L2) returns the input itself where it failed; phase 2 starts from its result.
        phase1 = self._optimise(detector, x, x, labels, targeted, None, eta, clip) if self.two_phase else x
        x_adv = self._optimise(detector, x, phase1, labels, targeted, log_kd, eta, clip)
        with torch.no_grad():
            logits, feats = detector.logits_and_features(x_adv)
            cls = labels if targeted else logits.argmax(1)
            f2 = detector_term(log_kd(feats, cls), eta[cls])
            mis = margin_term(logits, labels, self.confidence, targeted) <= -self.confidence
            mis &= (logits.argmax(1) == labels) if targeted else (logits.argmax(1) != labels)
            success = mis & (f2 <= 0)
            l2 = torch.where(success, (x_adv - x).flatten(1).norm(dim=1), torch.full_like(f2, math.inf))
        return CWResult(x_adv.detach(), success, mis, f2, l2, phase1.detach())

    def _optimise(self, detector, x0, start, labels, targeted, log_kd, eta, clip) -> Tensor:
        """Binary search over ``c`` of Adam-in-tanh-space rounds; returns the best example per input."""
        lo, hi = clip
        n = x0.shape[0]
        dev = x0.device

        def to_x(w: Tensor) -> Tensor:
            return lo + (hi - lo) * (torch.tanh(w) + 1.0) / 2.0

        unit = ((start - lo) / (hi - lo) * 2.0 - 1.0).clamp(-1 + 1e-6, 1 - 1e-6)
        w0 = torch.atanh(unit)
        const = torch.full((n,), self.initial_const, device=dev)
        lower, upper = torch.zeros(n, device=dev), torch.full((n,), 1e10, device=dev)
        best_l2 = torch.full((n,), math.inf, device=dev)
        best = start.clone()
        kappa = self.confidence
        for _ in range(self.binary_search_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=self.learning_rate)
            found = torch.zeros(n, dtype=torch.bool, device=dev)
            prev = torch.full((n,), math.inf, device=dev)
            check_every = max(self.max_iter // 10, 1)
            for step in range(self.max_iter):
                xa = to_x(w)
                logits, feats = detector.logits_and_features(xa)
                l2sq = (xa - x0).flatten(1).pow(2).sum(1)
                f = margin_term(logits, labels, kappa, targeted)
                loss_i = l2sq + const * f
                f2 = None
                if log_kd is not None:
                    cls = labels if targeted else logits.detach().argmax(1)
                    f2 = detector_term(log_kd(feats, cls), eta[cls])
                    loss_i = loss_i + const * f2
                opt.zero_grad(set_to_none=True)
                loss_i.sum().backward()
                opt.step()
                with torch.no_grad():
                    pred = logits.argmax(1)
                    ok = (f <= -kappa) & ((pred == labels) if targeted else (pred != labels))
                    if f2 is not None:
                        ok &= f2 <= 0
                    better = ok & (l2sq < best_l2)
                    best_l2 = torch.where(better, l2sq, best_l2)
                    best[better] = xa.detach()[better]
                    found |= ok
                    if self.abort_early and step % check_every == check_every - 1:
                        if not bool((loss_i < prev * 0.9999).any()):
                            break
                        prev = loss_i.detach()
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            const = torch.where(upper < 1e9, (lower + upper) / 2.0, const * 10.0)
        return best
