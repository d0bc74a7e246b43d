"""The per-input worst case over an ensemble of adaptive attacks, in AutoAttack's discipline.

Attacks run in a fixed order, each only on the inputs that no earlier attack broke (Croce & Hein 2020, the
``robust_flags`` of AutoAttack's ``run_standard_evaluation``); an input counts as broken when the example is within
the budget, classified as a wrong class AND not flagged by the detector (MEAD's per-input worst case for detectors,
Granese et al. 2022). Per input it records which attack broke it, at which distortion and detector score, and the
network passes it cost; for an input no attack broke, it keeps the best attempt (see
[`WorstCaseResult`][]), so that the scores of the attacks' examples can be drawn against the clean ones. An input
broken by a gradient-free attack after every gradient attack failed on it is
gradient masking evidence and raises a [`GradientMaskingWarning`][rce_art.exceptions.GradientMaskingWarning].
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rce_art._tensors import eval_mode
from rce_art._validation import check_inputs, check_labels, to_numpy
from rce_art.attacks.detector_class import DetectorAsClass
from rce_art.attacks.detector_pgd import classifier_margin, project
from rce_art.evaluation.members import KINDS, EnsembleAttack
from rce_art.evaluation.observer import SuccessObserver
from rce_art.exceptions import GradientMaskingWarning
from rce_art.metrics import wilson_interval

__all__ = ["WorstCaseEnsemble", "WorstCaseResult", "count_network_passes"]

BOUND_TOL = 1e-5
"""Slack (pixel units) allowed on an attack's distortion before its example is projected back, with a warning."""


@dataclass
class WorstCaseResult:
    """Per-input outcome of [`WorstCaseEnsemble.run`][WorstCaseEnsemble.run] (numpy arrays of length N).

    Attributes:
        x_adv: ``(N, ...)`` CPU tensor: the breaking example where one was found, else the best attempt: among the
            examples the attacks returned for the input (and the input itself), a misclassified one with the
            highest detector score (flagged, or it would be broken), else the one with the largest classifier
            margin ``max_{j != y} Z_j - Z_y`` (the closest to misclassified; ours).
        broken: Classified as a wrong class and not flagged, within the budget (clean inputs that already are count).
        attack: Name of the attack that broke each input (``"clean"``: already broken unattacked; ``""``: robust).
        linf: L-inf distortion of ``x_adv``.
        l2: L2 distortion of ``x_adv``.
        score: Detector score at ``x_adv`` (higher = more normal).
        flagged: ``x_adv`` is flagged at the threshold.
        pred: Predicted class at ``x_adv``.
        gradients: Network backward passes spent per input (all attacks that ran on it).
        queries: Network forward passes spent per input.
        masking: Broken by a gradient-free attack after every gradient attack of the ensemble failed on it.
        per_attack: One dict per attack: name, kind, description, inputs attacked / broken, seconds, passes.
        settings: Threshold, fpr, eps, norm, EOT samples, attack descriptions.
    """

    x_adv: Tensor
    broken: np.ndarray
    attack: np.ndarray
    linf: np.ndarray
    l2: np.ndarray
    score: np.ndarray
    flagged: np.ndarray
    pred: np.ndarray
    gradients: np.ndarray
    queries: np.ndarray
    masking: np.ndarray
    per_attack: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def rate(self, mask: np.ndarray | None = None) -> tuple[float, float, float, int]:
        """``(success rate, Wilson 95% low, high, n)`` over all inputs, or those where ``mask`` holds."""
        b = self.broken if mask is None else self.broken[mask]
        lo, hi = wilson_interval(int(b.sum()), int(b.size))
        return (float(b.mean()) if b.size else float("nan")), lo, hi, int(b.size)

    def broken_by(self, name: str) -> np.ndarray:
        """Inputs the named attack broke (in the ensemble's order: only those no earlier attack broke)."""
        return self.attack == name


@contextlib.contextmanager
def count_network_passes(model: nn.Module, calls: list[list[Any]] | None = None) -> Iterator[dict[str, int]]:
    """Count rows passed forward and backward through ``model``'s first parameterised layer, within the block.

    The first layer (in registration order) with parameters runs once per network evaluation of an input however
    the model is called (``forward`` or ``logits_and_features``); a backward pass through it is one gradient
    evaluation. Detectors that run the network several times per score (MC dropout) count each run. The hooks are
    removed on exit.

    Args:
        model: The network.
        calls: If given, one ``[rows, backward]`` entry is appended per forward call (``backward`` turns true when a
            gradient flows back through that call), e.g. to price each call (``benchmarks/worst_case.py``).

    Yields:
        ``{"forward": rows, "backward": rows, "forward_calls": calls, "backward_calls": calls}``, updated in place
        (a call is one batched pass, whatever its number of rows).
    """
    counts = {"forward": 0, "backward": 0, "forward_calls": 0, "backward_calls": 0}
    first = next((m for m in model.modules() if next(m.parameters(recurse=False), None) is not None), None)
    if first is None:
        yield counts
        return

    def on_forward(module: nn.Module, args: Any, out: Any) -> None:
        if isinstance(out, Tensor):
            entry = [int(out.shape[0]) if out.ndim else 1, False]
            counts["forward"] += entry[0]
            counts["forward_calls"] += 1
            if calls is not None:
                calls.append(entry)
            if out.requires_grad:
                out.register_hook(lambda g: _backward(int(g.shape[0]), entry))

    def _backward(rows: int, entry: list[Any]) -> None:
        counts["backward"] += rows
        counts["backward_calls"] += 1
        entry[1] = True

    handle = first.register_forward_hook(on_forward)
    try:
        yield counts
    finally:
        handle.remove()


class WorstCaseEnsemble:
    """Run attacks in a fixed order, each on the inputs still unbroken: the per-input worst case.

    Args:
        attacks: [`EnsembleAttack`][rce_art.evaluation.EnsembleAttack]s sharing one ``eps`` and ``norm``, in the
            order to run (gradient attacks first, then the gradient-free cross-checks, as AutoAttack orders them).
        batch_size: Inputs given to an attack at once.
        verbose: Progress bar over attacks and batches.
        keep_iterates: Observe every forward pass of the system during each attack and keep an iterate that broke
            an input when the attack's returned example did not ([`SuccessObserver`][rce_art.evaluation.SuccessObserver]:
            no success left behind); the per-attack records count them (``left_behind``).

    Raises:
        ValueError: Without attacks, or if they do not share one budget and norm.
    """

    def __init__(self, attacks: Sequence[EnsembleAttack], batch_size: int = 256, verbose: bool = False,
                 keep_iterates: bool = True) -> None:
        attacks = list(attacks)
        if not attacks:
            raise ValueError("WorstCaseEnsemble needs at least one attack")
        for a in attacks:
            if not isinstance(a, EnsembleAttack):
                raise TypeError(f"expected EnsembleAttack members (rce_art.adapters.build_adaptive_attack), got "
                                f"{type(a).__name__}")
            if a.kind not in KINDS:
                raise ValueError(f"attack {a.name!r} has kind {a.kind!r}; kinds are {KINDS}")
        budgets = {(a.eps, a.norm) for a in attacks}
        if len(budgets) != 1:
            raise ValueError(f"the attacks must share one eps and norm, got {sorted(budgets)}")
        if len({a.name for a in attacks}) != len(attacks):
            raise ValueError(f"attack names must be distinct, got {[a.name for a in attacks]}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.attacks, self.batch_size, self.verbose = attacks, int(batch_size), bool(verbose)
        self.keep_iterates = bool(keep_iterates)
        self.eps, self.norm = attacks[0].eps, attacks[0].norm

    def run(self, detector: Any, x: Any, y: Any, *, threshold: float | None = None, fpr: float | None = None,
            eot_samples: int = 1, score_scale: float | None = None) -> WorstCaseResult:
        """Attack ``x`` (true labels ``y``) against the classifier + ``detector`` at one operating threshold.

        Args:
            detector: A fitted detector (its classifier is the one attacked).
            x: Clean inputs ``(N, ...)`` within the classifier's clip values.
            y: True labels ``(N,)``.
            threshold: The operating threshold (default the detector's ``threshold_``), see
                [`DetectorAsClass`][rce_art.attacks.DetectorAsClass].
            fpr: Instead of ``threshold``: the false-positive rate that fixes it on the detector's calibration
                scores.
            eot_samples: Mask draws averaged in gradients of a stochastic detector.
            score_scale: Scale of the extra logit (default: robust spread of the calibration scores).

        Returns:
            [`WorstCaseResult`][].

        Raises:
            NotFittedError: If the detector is not fitted.
            ValueError, TypeError: On invalid inputs or labels.
        """
        system = DetectorAsClass(detector, threshold, fpr=fpr, eot_samples=eot_samples, score_scale=score_scale)
        clip = system.clip_values
        if clip is None:
            raise ValueError("the worst-case ensemble needs the classifier's clip_values (use an ART classifier)")
        check_inputs(x, name="x", input_shape=system.input_shape, clip_values=clip)
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x.detach(), dtype=torch.float32)
        x = x.to(system.device)
        y = torch.as_tensor(check_labels(y, x.shape[0], system.nb_classes)).to(system.device)
        n = x.shape[0]
        x_adv = x.clone()
        name = np.full(n, "", dtype=object)
        grads, queries = np.zeros(n), np.zeros(n)
        masking = np.zeros(n, bool)
        tried_gradient = np.zeros(n, bool)
        per_attack: list[dict[str, Any]] = []
        with eval_mode(system), count_network_passes(detector.view.model) as counts:
            broken, best_mis, best_val = self._outcome(system, x, y)
            name[broken] = "clean"
            bar = tqdm(total=len(self.attacks), desc="worst case", disable=not self.verbose, leave=False)
            for attack in self.attacks:
                rec: dict[str, Any] = {"attack": attack.name, "kind": attack.kind, "description": attack.describe(),
                                       "attacked": 0, "broken": 0, "seconds": 0.0, "gradients": 0, "queries": 0,
                                       "left_behind": 0}
                per_attack.append(rec)
                bar.set_postfix(attack=attack.name, robust=int((~broken).sum()))
                if not attack.applies_to(detector):
                    rec["skipped"] = f"does not apply to {type(detector).__name__}"
                    bar.update()
                    continue
                todo = np.flatnonzero(~broken)
                for start in range(0, todo.size, self.batch_size):
                    idx = torch.as_tensor(todo[start : start + self.batch_size], device=x.device)
                    before = dict(counts)
                    t0 = time.perf_counter()
                    seen = SuccessObserver(x[idx], y[idx], self.eps, self.norm, clip, BOUND_TOL)
                    system.observer = seen if self.keep_iterates else None
                    try:
                        cand = self._checked(attack, attack.run(system, x[idx], y[idx]), x[idx], clip)
                    finally:
                        system.observer = None
                    ok, mis, val = self._outcome(system, cand, y[idx])
                    rec["left_behind"] += self._keep_found(system, seen, cand, y[idx], x[idx], clip, (ok, mis, val))
                    rec["seconds"] += time.perf_counter() - t0
                    f, b = counts["forward"] - before["forward"], counts["backward"] - before["backward"]
                    rows = to_numpy(idx)
                    grads[rows] += b / len(rows)
                    queries[rows] += f / len(rows)
                    rec["gradients"] += b
                    rec["queries"] += f
                    rec["attacked"] += len(rows)
                    # the best attempt so far: misclassified beats correct; then the higher score (misclassified) or
                    # the larger classifier margin (correct); a breaking example beats every attempt
                    better = ok | (mis & ~best_mis[rows]) | ((mis == best_mis[rows]) & (val > best_val[rows]))
                    x_adv[rows[better]] = cand[torch.as_tensor(better, device=x.device)]
                    best_mis[rows[better]], best_val[rows[better]] = mis[better], val[better]
                    won = rows[ok]
                    broken[won] = True
                    name[won] = attack.name
                    rec["broken"] += len(won)
                    if attack.kind != "gradient":
                        masking[won] = tried_gradient[won]
                    else:
                        tried_gradient[rows] = True
                bar.update()
            bar.close()
            with torch.no_grad():
                logits, score = system.logits_and_score(x_adv)
                flagged = to_numpy(system.flags(score))
        if masking.any():
            warnings.warn(f"{int(masking.sum())} of {n} inputs were broken by a gradient-free attack after every "
                          "gradient attack failed on them: the detector or the classifier may mask gradients, and "
                          "gradient attacks alone would overstate robustness", GradientMaskingWarning, stacklevel=2)
        d = (x_adv - x).flatten(1)
        settings = {"threshold": system.threshold, "fpr": fpr if fpr is not None else getattr(detector, "fpr", None),
                    "eps": self.eps, "norm": self.norm, "eot_samples": eot_samples, "score_scale": system.score_scale,
                    "attacks": [a.describe() for a in self.attacks], "n": n}
        return WorstCaseResult(x_adv.detach().cpu(), broken, name, to_numpy(d.abs().amax(1)), to_numpy(d.norm(dim=1)),
                               to_numpy(score).astype(np.float64), flagged, to_numpy(logits.argmax(1)), grads, queries,
                               masking, per_attack, settings)

    def _outcome(self, system: DetectorAsClass, x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(broken, misclassified, value)`` per input, from one forward pass: ``value`` is the detector score where
        misclassified, else the classifier margin ``max_{j != y} Z_j - Z_y`` (the best-attempt ranking)."""
        parts = []
        with torch.no_grad():
            for i in range(0, x.shape[0], self.batch_size):
                logits, score = system.logits_and_score(x[i : i + self.batch_size])
                yb = y[i : i + self.batch_size]
                mis = logits.argmax(1) != yb
                flagged = system.flags(score)
                val = torch.where(mis, score.double(), -classifier_margin(logits, yb, False).double())
                parts.append((mis & ~flagged, mis, val))
        return tuple(to_numpy(torch.cat(p)) for p in zip(*parts))  # type: ignore[return-value]

    def _keep_found(self, system: DetectorAsClass, seen: SuccessObserver, cand: Tensor, y: Tensor, x: Tensor,
                    clip: tuple[float, float], outcome: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
        """Put the observed breaking iterates in ``cand`` (and ``outcome``, in place) where the attack's own example is
        not broken; return how many inputs that recovered (each re-checked on the system)."""
        ok, mis, val = outcome
        left = np.flatnonzero(to_numpy(seen.found) & ~ok)
        if left.size == 0:
            return 0
        rows = torch.as_tensor(left, device=cand.device)
        kept = project(seen.x_found[rows].to(cand), x[rows], self.eps, self.norm, clip)
        ok2, mis2, val2 = self._outcome(system, kept, y[rows])
        good = left[ok2]
        cand[torch.as_tensor(good, device=cand.device)] = kept[torch.as_tensor(ok2, device=cand.device)]
        ok[good], mis[good], val[good] = True, mis2[ok2], val2[ok2]
        return int(good.size)

    def _checked(self, attack: EnsembleAttack, cand: Any, x: Tensor, clip: tuple[float, float]) -> Tensor:
        """The attack's examples as a tensor like ``x``, projected onto the budget (with a warning past the slack)."""
        c = torch.as_tensor(cand, dtype=torch.float32).to(x.device).reshape(x.shape)
        if not torch.isfinite(c).all():
            raise RuntimeError(f"attack {attack.name!r} returned non-finite examples")
        d = (c - x).flatten(1)
        size = d.abs().amax(1) if self.norm == "linf" else d.norm(dim=1)
        if bool((size > self.eps + BOUND_TOL).any()) or bool(((c < clip[0] - BOUND_TOL) | (c > clip[1] + BOUND_TOL)).any()):
            warnings.warn(f"attack {attack.name!r} returned examples outside the {self.norm} ball of eps {self.eps} or "
                          f"the pixel range (largest distortion {float(size.max()):.6g}); they were projected back",
                          RuntimeWarning, stacklevel=3)
        return project(c, x, self.eps, self.norm, clip)
