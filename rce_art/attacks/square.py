"""Square Attack (L-inf): score-based random search, tensor-native, one forward per candidate.

Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box adversarial attack via random
search", ECCV 2020, Algorithm 1 with the L-inf sampling distribution (Sec. 3.1): vertical-stripe initialisation, then
per query a square window of side ``sqrt(p * H * W)`` set to ``x +- eps`` per channel, kept if the margin loss drops;
``p`` follows the paper's piecewise schedule (rescaled to the query budget, as AutoAttack does). Written from the
paper; AutoAttack's ``square.py`` was read for the schedule.

Ours: each input draws its own window and signs (the paper's per-example sampling); the current loss is cached, so
each query is one forward of the candidates only; inputs leave the batch as they break. On a classifier + detector
system the logits are folded per row, so the margin is negative exactly when the input is misclassified AND not
flagged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rce_art._signature import SignatureParams
from rce_art._tensors import eval_mode
from rce_art._validation import check_integer, check_positive, check_real
from rce_art.attacks._target import AttackTarget, attack_target, batch_tensors
from rce_art.attacks.apgd import BatchAttackResult
from rce_art.attacks.detector_pgd import classifier_margin

__all__ = ["Square", "square_fraction"]

_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256))


def square_fraction(p_init: float, query: int, queries: int) -> float:
    """Fraction ``p`` of the pixels a window covers at ``query`` of ``queries`` (Andriushchenko et al. 2020, Sec. 3;
    the schedule is defined on 10,000 queries and rescaled to the budget): ``p_init`` halved at queries 10, 50, 200,
    500, 1000, 2000, 4000, 6000 and 8000 of 10,000."""
    it = int(query / queries * 10_000)
    div = 512
    for bound, d in _SCHEDULE:
        if it <= bound:
            div = d
            break
    return p_init / div


class Square(SignatureParams):
    """The L-inf Square Attack on a classifier + detector system (or a plain classifier).

    Args:
        eps: L-inf budget in pixel units.
        queries: Forward passes per input (the initialisation counts as one).
        p_init: Initial fraction of pixels a window covers (0.8: AutoAttack's L-inf setting).
        seed: Seed of the random draws (a local generator; the global state is untouched).

    References:
        M. Andriushchenko, F. Croce, N. Flammarion, M. Hein. Square Attack: a query-efficient black-box
        adversarial attack via random search. ECCV 2020, Algorithm 1 and Sec. 3.1.
    """

    kind = "score"

    def __init__(self, eps: float, queries: int = 5000, p_init: float = 0.8, seed: int = 0) -> None:
        check_positive(eps, "eps")
        check_integer(queries, "queries", 1)
        check_real(p_init, "p_init", low=0.0, high=1.0)
        if p_init == 0:
            raise ValueError("p_init must be > 0")
        self.eps, self.queries, self.p_init, self.seed = float(eps), int(queries), float(p_init), int(seed)

    @torch.no_grad()
    def run(self, target: object, x: Tensor, y: Tensor, clip_values: tuple[float, float] | None = None
            ) -> BatchAttackResult:
        """Attack a batch of images.

        Args:
            target: A [`DetectorAsClass`][rce_art.attacks.DetectorAsClass], a fitted detector (at its
                ``threshold_``) or a classifier ``nn.Module`` (logits on raw inputs).
            x: Clean images ``(N, C, H, W)`` within the pixel range.
            y: True labels ``(N,)``.
            clip_values: Pixel range of a plain classifier module.

        Returns:
            [`BatchAttackResult`][rce_art.attacks.BatchAttackResult]: the first breaking example, else the lowest-margin
            one.

        Raises:
            ValueError: On inputs that are not images ``(N, C, H, W)`` or bad labels.
        """
        t = attack_target(target, clip_values)
        x, y = batch_tensors(t, x, y)
        if x.ndim != 4:
            raise ValueError(f"Square needs images (N, C, H, W), got inputs of shape {tuple(x.shape)}")
        gen = torch.Generator().manual_seed(self.seed)
        n, c, h, w = x.shape
        lo, hi = t.clip
        with eval_mode(t.module):
            best = (x + self.eps * self._signs((n, c, 1, w), gen, x.device)).clamp(lo, hi)
            margin = self._margin(t, best, y)
            out = best.clone()
            live = torch.arange(n, device=x.device)
            for q in range(1, self.queries):
                done = margin < 0
                if done.any():
                    out[live[done]] = best[done]
                    keep = ~done
                    live, best, margin = live[keep], best[keep], margin[keep]
                    if live.numel() == 0:
                        break
                xs, ys = x[live], y[live]
                side = min(max(round(math.sqrt(square_fraction(self.p_init, q, self.queries) * h * w)), 1), h, w)
                cand = self._candidate(xs, best, side, gen, (lo, hi))
                m = self._margin(t, cand, ys)
                better = m < margin
                best[better], margin = cand[better], torch.where(better, m, margin)
            out[live] = best
            success = torch.ones(n, dtype=torch.bool, device=x.device)  # rows that left the batch broke
            success[live] = margin < 0
        return BatchAttackResult(out, success)

    # ------------------------------------------------------------------ pieces
    @staticmethod
    def _signs(shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> Tensor:
        return (torch.randint(0, 2, shape, generator=gen) * 2 - 1).float().to(device)

    @staticmethod
    def _margin(t: AttackTarget, x: Tensor, y: Tensor) -> Tensor:
        """``z_y - max_{i != y} z_i`` of the (folded) logits: negative exactly when the input succeeds."""
        logits = t.logits(x, y)
        m = classifier_margin(logits, y, False)
        return torch.where((logits.argmax(1) != y) & (m >= 0), -torch.finfo(m.dtype).tiny, m)  # a tie lost counts

    def _candidate(self, x: Tensor, best: Tensor, side: int, gen: torch.Generator, clip: tuple[float, float]) -> Tensor:
        """Per input, a random ``side x side`` window of ``best`` set to ``x +- eps`` (one sign per channel), drawn
        again (up to 10 times) where it would leave the window unchanged."""
        n, c, h, w = x.shape
        top = torch.randint(0, h - side + 1, (n,), generator=gen).to(x.device)
        left = torch.randint(0, w - side + 1, (n,), generator=gen).to(x.device)
        rows = torch.arange(h, device=x.device)[None] - top[:, None]
        cols = torch.arange(w, device=x.device)[None] - left[:, None]
        inside = ((rows >= 0) & (rows < side))[:, :, None] & ((cols >= 0) & (cols < side))[:, None, :]
        inside = inside[:, None]
        signs = self._signs((n, c, 1, 1), gen, x.device)
        cand = torch.where(inside, (x + self.eps * signs).clamp(*clip), best)
        for _ in range(10):
            same = (cand - best).abs().flatten(1).amax(1) < 1e-7
            if not same.any():
                break
            signs[same] = self._signs((int(same.sum()), c, 1, 1), gen, x.device)
            cand[same] = torch.where(inside[same], (x[same] + self.eps * signs[same]).clamp(*clip), best[same])
        return cand
