"""Square Attack (L-inf and L2): score-based random search, tensor-native, one forward per candidate.

Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box adversarial attack via random
search", ECCV 2020, Algorithm 1 with the L-inf sampling distribution (Sec. 3.1, Algorithm 2: vertical-stripe
initialisation, then per query a square window of side ``sqrt(p * H * W)`` set to ``x +- eps`` per channel) or the
L2 one (Sec. 3.2, Algorithm 3: a grid of centred "two rectangles" patterns, then per query the perturbation's mass in
two windows moved into the first, with a new pattern, the total kept at norm ``eps``); a candidate is kept if the
margin loss drops; ``p`` follows the paper's piecewise schedule (rescaled to the query budget, as AutoAttack does).
Written from the paper; AutoAttack's ``square.py`` was read for the schedule and the L2 pattern.

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

__all__ = ["Square", "l2_window_pattern", "square_fraction"]

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


def _rectangle(rows: int, cols: int) -> Tensor:
    """Concentric squares around the centre of a ``rows x cols`` rectangle, the square of radius ``k`` adding
    ``1 / (k + 1)^2``: a pixel at Chebyshev distance ``d`` holds ``sum_{k=d}^{K-1} 1 / (k + 1)^2``."""
    k_max = max(rows // 2, cols // 2) + 1
    i = (torch.arange(rows) - rows // 2).abs()
    j = (torch.arange(cols) - cols // 2).abs()
    d = torch.maximum(i[:, None], j[None, :])
    tail = (1.0 / torch.arange(1, k_max + 1, dtype=torch.float32) ** 2).flip(0).cumsum(0).flip(0)  # sum_{k>=d}
    return tail[d.clamp_max(k_max - 1)]


def l2_window_pattern(side: int) -> Tensor:
    """The L2 Square Attack's window update ``eta`` (Andriushchenko et al. 2020, Sec. 3.2, Fig. 2): a ``side x side``
    pattern whose upper half is a positive and lower half a negative block of concentric squares (each block
    normalised), of unit L2 norm.

    Args:
        side: Window side (``>= 1``).

    Returns:
        ``(side, side)`` float32 tensor of unit L2 norm.
    """
    check_integer(side, "side", 1)
    top, bottom = _rectangle(side // 2, side), _rectangle(side - side // 2, side)
    parts = [b / b.norm().clamp_min(1e-12) for b in (top, bottom) if b.numel()]
    eta = torch.cat([parts[0], -parts[1]]) if len(parts) == 2 else -parts[0]
    return eta / eta.norm()


class Square(SignatureParams):
    """The Square Attack (L-inf or L2) on a classifier + detector system (or a plain classifier).

    Args:
        eps: Budget in pixel units (L-inf radius, or L2 radius over all of an input's pixels and channels).
        queries: Forward passes per input (the initialisation counts as one).
        p_init: Initial fraction of pixels a window covers (0.8: AutoAttack's setting for both norms).
        seed: Seed of the random draws (a local generator; the global state is untouched).
        norm: ``"linf"`` or ``"l2"``.

    Raises:
        ValueError: On a non-positive ``eps`` or ``queries``, ``p_init`` outside ``(0, 1]`` or an unknown norm.

    References:
        M. Andriushchenko, F. Croce, N. Flammarion, M. Hein. Square Attack: a query-efficient black-box
        adversarial attack via random search. ECCV 2020, Algorithm 1, Sec. 3.1 (L-inf) and Sec. 3.2 (L2).
    """

    kind = "score"

    def __init__(self, eps: float, queries: int = 5000, p_init: float = 0.8, seed: int = 0, norm: str = "linf") -> None:
        check_positive(eps, "eps")
        check_integer(queries, "queries", 1)
        check_real(p_init, "p_init", low=0.0, high=1.0)
        if p_init == 0:
            raise ValueError("p_init must be > 0")
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
        self.eps, self.queries, self.p_init, self.seed = float(eps), int(queries), float(p_init), int(seed)
        self.norm = norm

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
            if self.norm == "linf":
                best = (x + self.eps * self._signs((n, c, 1, w), gen, x.device)).clamp(lo, hi)
            else:
                best = self._l2_start(x, gen, (lo, hi))
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
                side = round(math.sqrt(square_fraction(self.p_init, q, self.queries) * h * w))
                if self.norm == "linf":
                    cand = self._candidate(xs, best, min(max(side, 1), h, w), gen, (lo, hi))
                else:  # odd and at least 3 (the pattern needs a centre), as in the paper's L2 schedule
                    side = max(side, 3)
                    cand = self._l2_candidate(xs, best, min(side + 1 - side % 2, h, w), gen, (lo, hi))
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

    @staticmethod
    def _window(n: int, h: int, w: int, side: int, gen: torch.Generator, device: torch.device
                ) -> tuple[Tensor, Tensor, Tensor]:
        """A random ``side x side`` window per input: ``(top (N,), left (N,), inside (N, 1, H, W) bool)``."""
        top = torch.randint(0, h - side + 1, (n,), generator=gen).to(device)
        left = torch.randint(0, w - side + 1, (n,), generator=gen).to(device)
        rows = torch.arange(h, device=device)[None] - top[:, None]
        cols = torch.arange(w, device=device)[None] - left[:, None]
        inside = ((rows >= 0) & (rows < side))[:, :, None] & ((cols >= 0) & (cols < side))[:, None, :]
        return top, left, inside[:, None]

    def _candidate(self, x: Tensor, best: Tensor, side: int, gen: torch.Generator, clip: tuple[float, float]) -> Tensor:
        """Per input, a random ``side x side`` window of ``best`` set to ``x +- eps`` (one sign per channel), drawn
        again (up to 10 times) where it would leave the window unchanged."""
        n, c, h, w = x.shape
        inside = self._window(n, h, w, side, gen, x.device)[2]
        signs = self._signs((n, c, 1, 1), gen, x.device)
        cand = torch.where(inside, (x + self.eps * signs).clamp(*clip), best)
        for _ in range(10):
            same = (cand - best).abs().flatten(1).amax(1) < 1e-7
            if not same.any():
                break
            signs[same] = self._signs((int(same.sum()), c, 1, 1), gen, x.device)
            cand[same] = torch.where(inside[same], (x[same] + self.eps * signs[same]).clamp(*clip), best[same])
        return cand

    # ------------------------------------------------------------------ L2 (Sec. 3.2)
    def _l2_scaled(self, delta: Tensor, x: Tensor, clip: tuple[float, float]) -> Tensor:
        """``x`` plus ``delta`` rescaled to L2 norm ``eps``, within the pixel range."""
        norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return (x + delta * (self.eps / norm)).clamp(*clip)

    def _l2_start(self, x: Tensor, gen: torch.Generator, clip: tuple[float, float]) -> Tensor:
        """A grid of windows of side ``min(H, W) // 5`` (offset so that five of them are centred) as far as they fit,
        each the pattern with a random sign per channel, rescaled to norm ``eps``."""
        n, c, h, w = x.shape
        side = max(min(h, w) // 5, 1)
        pattern = l2_window_pattern(side).to(x.device)
        delta = torch.zeros_like(x)
        oh, ow = max((h - 5 * side) // 2, 0), max((w - 5 * side) // 2, 0)
        for r in range(oh, h - side + 1, side):
            for q in range(ow, w - side + 1, side):
                delta[:, :, r : r + side, q : q + side] += pattern * self._signs((n, c, 1, 1), gen, x.device)
        return self._l2_scaled(delta, x, clip)

    def _l2_candidate(self, x: Tensor, best: Tensor, side: int, gen: torch.Generator, clip: tuple[float, float]
                      ) -> Tensor:
        """Per input, two random windows: the perturbation's mass in both (per channel) plus the unused budget goes
        into the first with a new pattern (random sign per channel, transposed half the time) added to its old
        direction; the second is emptied; the whole is rescaled to norm ``eps`` (Algorithm 3)."""
        n, c, h, w = x.shape
        delta = best - x
        top, left, in1 = self._window(n, h, w, side, gen, x.device)
        in2 = self._window(n, h, w, side, gen, x.device)[2]
        b = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        ch = torch.arange(c, device=x.device).view(1, c, 1, 1)
        r = (top[:, None] + torch.arange(side, device=x.device)).view(n, 1, side, 1)
        q = (left[:, None] + torch.arange(side, device=x.device)).view(n, 1, 1, side)
        old = delta[b, ch, r, q]  # (N, C, side, side): the first window's current perturbation
        old = old / old.flatten(2).norm(dim=2).clamp_min(1e-12)[..., None, None]
        pattern = l2_window_pattern(side).to(x.device)
        flip = torch.rand(n, generator=gen).to(x.device) < 0.5
        eta = torch.where(flip.view(n, 1, 1, 1), pattern.T, pattern) * self._signs((n, c, 1, 1), gen, x.device)
        new = eta + old
        unused = (self.eps**2 - delta.flatten(1).pow(2).sum(1)).clamp_min(0.0).view(n, 1) / c
        mass = (delta * (in1 | in2)).flatten(2).pow(2).sum(2)  # (N, C)
        new = new / new.flatten(2).norm(dim=2).clamp_min(1e-12)[..., None, None] * (unused + mass).sqrt()[..., None, None]
        moved = delta.masked_fill(in2, 0.0).index_put((b, ch, r, q), new)
        return self._l2_scaled(moved, x, clip)
