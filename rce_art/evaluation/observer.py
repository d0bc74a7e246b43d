"""No success left behind: every iterate an attack evaluates on the system is checked, and a breaking one is kept.

An attack returns one example per input, chosen by its own bookkeeping (best loss, last iterate, early stop): a
toolkit's choice may be an example that is not broken although an earlier iterate was (its loss is not the system's
success test, or its bookkeeping has a bug). A [`SuccessObserver`][] set on a
[`DetectorAsClass`][rce_art.attacks.DetectorAsClass] sees every forward pass of the system (every iterate of every
attack that attacks the system or its folded forms: the toolkits' attacks, rce-art's APGD, Square and RayS) and
keeps, per input, the first iterate that was within the budget, classified as a wrong class AND not flagged.
[`WorstCaseEnsemble`][rce_art.evaluation.WorstCaseEnsemble] substitutes it where the returned example is not broken,
and counts those inputs per attack (``left_behind``). Attacks that attack the detector directly (DetectorPGD,
C&W-wb) keep their best iterate themselves and are not observed.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SuccessObserver"]


class SuccessObserver:
    """Per input, the first observed iterate that broke it (within the budget, misclassified AND not flagged).

    An observed row is matched to the input it is closest to (in the attack's norm); it counts only within ``eps`` (and
    ``tol``) of that input and inside the pixel range.

    Args:
        x: The attacked inputs ``(N, ...)``.
        y: Their true labels ``(N,)``.
        eps: The budget.
        norm: ``"linf"`` or ``"l2"``.
        clip: The pixel range.
        tol: Slack on the budget and the range (the ensemble's projection tolerance).

    Attributes:
        found (Tensor): ``(N,)`` bool, an iterate broke the input.
        x_found (Tensor): ``(N, ...)`` that iterate (the input itself where none did).
        rows_seen (int): Rows observed.
    """

    def __init__(self, x: Tensor, y: Tensor, eps: float, norm: str, clip: tuple[float, float],
                 tol: float = 1e-5) -> None:
        self.x0 = x.detach().flatten(1).float()
        self.y = y.detach().long().to(x.device)
        self.eps, self.p = float(eps), (float("inf") if norm == "linf" else 2.0)
        self.clip, self.tol = (float(clip[0]), float(clip[1])), float(tol)
        self.found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        self.x_found = x.detach().clone()
        self.rows_seen = 0

    @torch.no_grad()
    def see(self, x: Tensor, logits: Tensor, flagged: Tensor) -> None:
        """Check one forward pass: rows ``x`` with the classifier's ``logits`` and the detector's ``flagged``."""
        if x.shape[0] == 0 or x[0].numel() != self.x0.shape[1]:
            return
        xb = x.detach().flatten(1).float().to(self.x0.device)
        self.rows_seen += xb.shape[0]
        dist, j = torch.cdist(xb, self.x0, p=self.p).min(1)
        in_range = (xb >= self.clip[0] - self.tol).all(1) & (xb <= self.clip[1] + self.tol).all(1)
        ok = (dist <= self.eps + self.tol) & in_range
        ok &= (logits.argmax(1).to(j.device) != self.y[j]) & ~flagged.to(j.device)
        ok &= ~self.found[j]
        for r in ok.nonzero()[:, 0].tolist():  # a few rows per pass at most; the first per input wins
            k = int(j[r])
            if not self.found[k]:
                self.found[k] = True
                self.x_found[k] = x[r].detach().reshape(self.x_found[k].shape).to(self.x_found.dtype)
