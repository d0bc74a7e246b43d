"""Detection metrics on logits: confidence and non-ME (Pang et al. 2018, Section 3.1).

Both follow the library's sign convention for scores: **higher means more normal**.
They take ordinary logits (for an RCE-trained network, the reversed logits ``-Z``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rce_art._validation import check_logits

__all__ = ["confidence", "confidence_log_odds", "non_me", "rate_with_interval", "wilson_interval"]


def confidence(logits: Tensor) -> Tensor:
    """Confidence ``F(x)_ŷ``: the softmax probability of the predicted class.

    Args:
        logits: Ordinary logits, shape ``(N, L)``.

    Returns:
        Tensor of shape ``(N,)`` in ``[1/L, 1]``.

    Raises:
        TypeError: If ``logits`` is not a floating tensor.
        ValueError: On a wrong shape, an empty batch or non-finite values.
    """
    check_logits(logits)
    return F.log_softmax(logits, dim=1).max(dim=1).values.exp()


def confidence_log_odds(logits: Tensor) -> Tensor:
    """Log-odds of the confidence, ``log(F_ŷ / (1 - F_ŷ)) = Z_ŷ - logsumexp_{i != ŷ} Z_i``: a tie-free ranking score.

    A strictly increasing function of [`confidence`][], so it ranks inputs exactly as the
    confidence would in exact arithmetic; computed from logits with a log-sum-exp, it stays
    distinct where float32 rounds the confidence itself to exactly 1.0 (logit margins above ~17).
    Rank by it (ROC-AUC, TPR, thresholds); report [`confidence`][] as the value in ``[0, 1]``.

    Args:
        logits: Ordinary logits, shape ``(N, L)``.

    Returns:
        Tensor of shape ``(N,)`` in ``[-log(L-1), inf)``, finite for finite logits.

    Raises:
        TypeError: If ``logits`` is not a floating tensor.
        ValueError: On a wrong shape, an empty batch or non-finite values.

    References:
        Pang et al., Towards Robust Detection of Adversarial Examples, NeurIPS 2018, Section 3.1 (confidence).
    """
    check_logits(logits)
    top = logits.argmax(dim=1, keepdim=True)
    others = logits.masked_fill(torch.zeros_like(logits, dtype=torch.bool).scatter_(1, top, True), float("-inf"))
    return logits.gather(1, top)[:, 0] - torch.logsumexp(others, dim=1)


def non_me(logits: Tensor) -> Tensor:
    """Non-maximal entropy (paper eq. 1): entropy of the normalised non-maximal softmax outputs.

    ``non-ME(x) = -sum_{i != ŷ} F̂_i log F̂_i`` with ``F̂_i = F_i / sum_{j != ŷ} F_j``.
    Since ``F̂`` is the softmax of the logits with the predicted class removed, it is
    computed from a masked log-softmax: no probability is ever divided or logged, so
    the result stays finite (0, not NaN) when some ``F_i`` underflow to 0.

    Args:
        logits: Ordinary logits, shape ``(N, L)``.

    Returns:
        Tensor of shape ``(N,)`` in ``[0, log(L-1)]``.

    Raises:
        TypeError: If ``logits`` is not a floating tensor.
        ValueError: On a wrong shape, an empty batch or non-finite values.

    References:
        Pang et al., Towards Robust Detection of Adversarial Examples, NeurIPS 2018, eq. (1).
    """
    check_logits(logits)
    top = logits.argmax(dim=1, keepdim=True)
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, top, True)
    masked = logits.masked_fill(mask, float("-inf"))
    log_p = F.log_softmax(masked, dim=1).masked_fill(mask, 0.0)  # finite everywhere, also for gradients
    p = log_p.exp().masked_fill(mask, 0.0)
    return -(p * log_p).sum(dim=1)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / n``.

    Used for every rate rce-art reports (success rates, robust accuracy, realised false-positive rates): unlike the
    normal approximation it stays inside ``[0, 1]`` and is not degenerate at 0 or 1.

    Args:
        successes: Number of successes, ``0 <= successes <= n``.
        n: Number of trials (``0`` gives ``(nan, nan)``).
        confidence: Coverage of the two-sided interval, in ``(0, 1)``.

    Returns:
        ``(low, high)`` in ``[0, 1]``.

    Raises:
        ValueError: On counts outside ``0 <= successes <= n`` or a confidence outside ``(0, 1)``.

    References:
        E. B. Wilson. Probable inference, the law of succession, and statistical inference. JASA 22, 1927.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return float("nan"), float("nan")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no rounding residue at 0 and n
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def rate_with_interval(k: int, n: int) -> dict[str, Any]:
    """A rate as rce-art's reports store it: ``{"k", "n", "rate", "lo", "hi"}`` with the Wilson 95% interval.

    Args:
        k: Successes, ``0 <= k <= n``.
        n: Trials (``0`` gives a ``nan`` rate and interval).

    Returns:
        The record, with plain Python numbers (JSON-serialisable).

    Raises:
        ValueError: On counts outside ``0 <= k <= n``.
    """
    k, n = int(k), int(n)
    lo, hi = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": (k / n if n else float("nan")), "lo": lo, "hi": hi}
