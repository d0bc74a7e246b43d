"""Tramer's bound: robust accuracy with detection at eps implies a classifier with that robust accuracy at eps/2.

Tramer ("Detecting adversarial examples is (nearly) as hard as classifying them", ICML 2022) shows that a detector
with robust accuracy (with detection) ``a`` against perturbations of size eps yields an (inefficient) classifier with
robust accuracy ``a`` at eps/2. A detection claim whose lower confidence bound exceeds the best known robust accuracy
of any classifier at eps/2 therefore claims more than the state of the art in robust classification: the evaluation
is the first suspect.
"""

from __future__ import annotations

from typing import Any

__all__ = ["tramer_bound"]


def tramer_bound(robust_accuracy: dict[str, Any], reference: float, eps: float) -> dict[str, Any]:
    """Check a robust accuracy with detection against a reference robust accuracy at eps/2 (Tramer 2022).

    Args:
        robust_accuracy: The robust accuracy with detection at ``eps``: ``{"rate", "lo", "hi"}`` (e.g. a report
            point's ``robust_accuracy``; ``lo`` is the lower end of its interval).
        reference: The best known robust accuracy of a classifier on the task at ``eps / 2``, in ``[0, 1]``.
        eps: The budget of the detection claim.

    Returns:
        ``{"holds": lo <= reference, "implied": lo, "eps_half": eps / 2, "reference": reference, "evidence": str}``.

    Raises:
        ValueError: If ``reference`` is not in ``[0, 1]`` or ``robust_accuracy`` lacks ``rate`` / ``lo`` / ``hi``.

    References:
        F. Tramer. Detecting Adversarial Examples Is (Nearly) As Hard As Classifying Them. ICML 2022.

    Example:
        ```python
        verdict = tramer_bound({"rate": 0.9, "lo": 0.85, "hi": 0.94}, reference=0.6, eps=0.1)
        verdict["holds"]  # False: the claim implies 0.85 robust accuracy at 0.05, the best known is 0.6
        ```
    """
    if not 0.0 <= float(reference) <= 1.0:
        raise ValueError(f"reference must be a robust accuracy in [0, 1], got {reference!r}")
    missing = {"rate", "lo", "hi"} - set(robust_accuracy)
    if missing:
        raise ValueError(f"robust_accuracy needs rate, lo and hi; {sorted(missing)} missing")
    lo, rate, hi = float(robust_accuracy["lo"]), float(robust_accuracy["rate"]), float(robust_accuracy["hi"])
    holds = lo <= float(reference)
    evidence = (f"robust accuracy with detection {rate:.3f} [{lo:.3f}, {hi:.3f}] at eps {eps:.3g} implies a classifier "
                f"with robust accuracy >= {lo:.3f} at eps/2 = {eps / 2:.3g} (Tramer 2022); the reference robust "
                f"accuracy at eps/2 is {float(reference):.3f}" + ("" if holds else
                                                                  ": the claim would beat it, suspect the evaluation"))
    return {"holds": holds, "implied": lo, "eps_half": eps / 2, "reference": float(reference), "evidence": evidence}
