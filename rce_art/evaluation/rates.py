"""Metrics of an attack on a classifier with a detector, at one operating point (a threshold, or the false-positive
rate that fixes it): the definitions of docs/concepts.md ("Robust accuracy with detection").

Per input, three booleans at the operating point: ``clean_correct`` (the clean input is classified correctly),
``clean_flagged`` (the detector rejects the clean input) and ``broken`` (the attack found an example within the budget
that is misclassified AND not flagged). Then

* **robust accuracy with detection** = mean(``clean_correct & ~clean_flagged & ~broken``): a clean input that is
  misclassified or rejected is an error, as is a broken one (Tramer 2022; Chen et al. 2023's robust accuracy with
  rejection at ``alpha = 0``; Sheikholeslami et al. 2021);
* **served** = ``clean_correct & ~clean_flagged``, the inputs the system answers correctly without an attack;
  **SR** (success rate) = sum(``served & broken``) / sum(``served``), so that robust accuracy = served rate x (1 - SR);
* **attack-failure rate** = 1 - mean(``broken``) over all inputs: what rce-art <= 0.5 called "robust accuracy with
  rejection"; it counts every clean input the detector already rejects as robust, and is never a robust accuracy.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from rce_art.detectors.calibration import calibrate_threshold, is_flagged
from rce_art.evaluation.protocol import detection_auc
from rce_art.metrics import rate_with_interval

__all__ = [
    "adaptive_report",
    "attack_failure_rate",
    "operating_point_rates",
    "robust_accuracy_with_detection",
    "robust_accuracy_with_rejection",
    "served_success_rate",
    "success_at_fpr",
]


def _bools(name: str, a: Any, n: int | None = None) -> np.ndarray:
    out = np.asarray(a).astype(bool).ravel()
    if n is not None and out.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) like the other per-input arrays, got {out.shape}")
    return out


def robust_accuracy_with_detection(clean_correct: Any, clean_flagged: Any, broken: Any) -> float:
    """Robust accuracy of a classifier with a detector: the fraction of inputs classified correctly AND accepted on
    clean data AND not broken by the attack.

    A clean input that is misclassified or rejected counts as an error, as a broken one does (abstaining on a clean
    input is not a correct answer).

    Args:
        clean_correct: ``(N,)`` bool, the clean input is classified correctly.
        clean_flagged: ``(N,)`` bool, the detector rejects the clean input at the operating threshold.
        broken: ``(N,)`` bool, the attack found an example within the budget that is misclassified AND not flagged.

    Returns:
        The rate in ``[0, 1]`` (``nan`` for no input).

    Raises:
        ValueError: If the arrays differ in length.

    References:
        F. Tramer. Detecting Adversarial Examples Is (Nearly) As Hard As Classifying Them. ICML 2022.
        J. Chen, J. Raghuram, J. Choi, X. Wu, Y. Liang, S. Jha. Stratified Adversarial Robustness with Rejection.
        ICML 2023 (robust accuracy with rejection at ``alpha = 0``).
        F. Sheikholeslami, A. Lotfi, J. Z. Kolter. Provably Robust Classification of Adversarial Examples with
        Detection. ICLR 2021.
    """
    return float(operating_point_rates(clean_correct, clean_flagged, broken)["robust_accuracy"]["rate"])


def served_success_rate(clean_correct: Any, clean_flagged: Any, broken: Any) -> float:
    """SR over the served inputs: of the inputs classified correctly and accepted on clean data, the fraction the
    attack broke (misclassified AND not flagged). ``nan`` when no input is served.

    Args:
        clean_correct: ``(N,)`` bool, the clean input is classified correctly.
        clean_flagged: ``(N,)`` bool, the detector rejects the clean input at the operating threshold.
        broken: ``(N,)`` bool, broken by the attack.

    Returns:
        The rate in ``[0, 1]``; robust accuracy with detection = served rate x (1 - this).

    Raises:
        ValueError: If the arrays differ in length.
    """
    return float(operating_point_rates(clean_correct, clean_flagged, broken)["sr"]["rate"])


def attack_failure_rate(pred_adv: Any, y: Any, flagged: Any) -> float:
    """Fraction of attacked inputs whose example is classified correctly or flagged: 1 - the all-inputs SR.

    Not a robust accuracy: every input the detector already rejects on clean data counts here as a failure of
    the attack. rce-art <= 0.5 reported it as "robust accuracy with rejection".

    Args:
        pred_adv: ``(N,)`` predicted classes of the adversarial examples.
        y: ``(N,)`` true labels.
        flagged: ``(N,)`` bool, the detector flags the adversarial example.

    Returns:
        The rate in ``[0, 1]``.
    """
    p = np.asarray(pred_adv).ravel()
    return float(((p == np.asarray(y).ravel()) | _bools("flagged", flagged, p.size)).mean())


def robust_accuracy_with_rejection(pred_adv: Any, y: Any, flagged: Any) -> float:
    """Deprecated since 0.6: [`attack_failure_rate`][] (the same number, named for what it is).

    For the robust accuracy of the literature use [`robust_accuracy_with_detection`][], which counts a clean
    input that is rejected or misclassified as an error.

    Args:
        pred_adv: ``(N,)`` predicted classes of the adversarial examples.
        y: ``(N,)`` true labels.
        flagged: ``(N,)`` bool, the detector flags the adversarial example.
    """
    warnings.warn("robust_accuracy_with_rejection is deprecated since rce-art 0.6 and will be removed in 0.7: it is "
                  "the attack-failure rate (attack_failure_rate, same number), not a robust accuracy; use "
                  "robust_accuracy_with_detection(clean_correct, clean_flagged, broken) for the literature's "
                  "definition", DeprecationWarning, stacklevel=2)
    return attack_failure_rate(pred_adv, y, flagged)


def success_at_fpr(clean_scores: np.ndarray, adv_scores: np.ndarray, goal_met: np.ndarray, fpr: float,
                   served: np.ndarray | None = None) -> float:
    """SR@fpr: fraction of attacked inputs that meet the attack's goal AND are not flagged.

    The threshold is fixed on held-out clean scores so that a fraction ``fpr`` of them is flagged
    ([`calibrate_threshold`][rce_art.detectors.calibrate_threshold]; higher score = more normal) — never on attacked inputs.
    SR@5 and SR@50 (Bryniarski et al. 2022) use ``fpr = 0.05`` and ``0.5``.

    Args:
        clean_scores: Scores of held-out clean inputs ``(M,)``.
        adv_scores: Scores of the attacked inputs ``(N,)``.
        goal_met: ``(N,)`` booleans: misclassified (untargeted) or target reached.
        fpr: False-positive rate fixing the threshold, in ``[0, 1)``.
        served: ``(N,)`` booleans, the inputs classified correctly and accepted on clean data at this threshold:
            the rate is then over those (the definition of rce-art's reports); ``None``: over all ``N`` inputs
            (the all-inputs SR, a secondary number).

    Returns:
        The success rate in ``[0, 1]`` (``nan`` when no input is served).

    Raises:
        ValueError: If the per-input arrays differ in length.
    """
    t = calibrate_threshold(np.asarray(clean_scores, np.float64), fpr)
    adv, goal = np.asarray(adv_scores, np.float64).ravel(), np.asarray(goal_met, bool).ravel()
    if adv.shape != goal.shape:
        raise ValueError(f"adv_scores and goal_met must have one shape, got {adv.shape} and {goal.shape}")
    ok = goal & ~is_flagged(adv, t)
    if served is None:
        return float(ok.mean())
    s = _bools("served", served, ok.size)
    return float((ok & s).sum() / s.sum()) if s.any() else float("nan")


def operating_point_rates(clean_correct: Any, clean_flagged: Any, broken: Any) -> dict[str, dict[str, Any]]:
    """Every rate of one operating point, each as ``{"k", "n", "rate", "lo", "hi"}`` (Wilson 95% interval).

    Args:
        clean_correct: ``(N,)`` bool, the clean input is classified correctly.
        clean_flagged: ``(N,)`` bool, the detector rejects the clean input at the operating threshold.
        broken: ``(N,)`` bool, broken by the attack (misclassified AND not flagged, within the budget).

    Returns:
        ``robust_accuracy`` (with detection, the headline), ``sr`` (over the served inputs), ``served``,
        ``selective_accuracy`` (accuracy on the clean inputs the detector accepts), ``sr_all`` (over all inputs,
        secondary) and ``attack_failure`` (1 - ``sr_all``; not a robust accuracy).
    """
    c = _bools("clean_correct", clean_correct)
    f, b = _bools("clean_flagged", clean_flagged, c.size), _bools("broken", broken, c.size)
    served, n = c & ~f, c.size
    rate = rate_with_interval
    return {"robust_accuracy": rate((served & ~b).sum(), n), "sr": rate((served & b).sum(), served.sum()),
            "served": rate(served.sum(), n), "selective_accuracy": rate(served.sum(), (~f).sum()),
            "sr_all": rate(b.sum(), n), "attack_failure": rate(n - b.sum(), n)}


def adaptive_report(clean_scores: np.ndarray, x_scores: np.ndarray, adv_scores: np.ndarray, pred_adv: np.ndarray,
                    y: np.ndarray, goal_met: np.ndarray, linf: np.ndarray, l2: np.ndarray,
                    fprs: tuple[float, ...] = (0.05, 0.5), clean_pred: np.ndarray | None = None,
                    **labels: Any) -> dict[str, Any]:
    """One record of an adaptive attack on one detector, with the definitions of the module docstring.

    Args:
        clean_scores: Scores of held-out clean inputs (threshold calibration).
        x_scores: Scores of the clean versions of the attacked inputs (clean flags, and the AUC).
        adv_scores: Scores of the attacked inputs.
        pred_adv: Predicted classes of the attacked inputs.
        y: True labels.
        goal_met: Misclassified / target reached per attacked input.
        linf: Per-input L-inf distortion.
        l2: Per-input L2 distortion.
        fprs: False-positive rates of the reported success rates.
        clean_pred: Predicted classes of the clean inputs (which are served). Without it every clean input is
            assumed classified correctly, with a ``DeprecationWarning`` (required from 0.7).
        **labels: Extra fields of the record.

    Returns:
        Per rate ``f`` (tag ``round(100 f)``): ``SR@f`` (over the served inputs), ``robust_acc@f`` (with
        detection), ``served@f``, ``SR_all@f`` (over all inputs) and ``attack_failure@f``; then ``auc`` (clean vs
        attacked, all inputs), ``misclassified``, ``mean_linf``, ``mean_l2``.
    """
    y = np.asarray(y).ravel()
    if clean_pred is None:
        warnings.warn("adaptive_report without clean_pred assumes every attacked input is classified correctly on "
                      "clean data; pass clean_pred (the clean predictions) so that robust accuracy and SR count the "
                      "inputs the system serves (required from rce-art 0.7)", DeprecationWarning, stacklevel=2)
        clean_correct = np.ones(y.size, bool)
    else:
        clean_correct = np.asarray(clean_pred).ravel() == y
    rec: dict[str, Any] = dict(labels)
    for f in fprs:
        t = calibrate_threshold(np.asarray(clean_scores, np.float64), f)
        tag = f"{round(100 * f)}"
        broken = np.asarray(goal_met, bool).ravel() & ~is_flagged(np.ravel(adv_scores), t)
        rates = operating_point_rates(clean_correct, is_flagged(np.ravel(x_scores), t), broken)
        rec[f"SR@{tag}"] = rates["sr"]["rate"]
        rec[f"robust_acc@{tag}"] = rates["robust_accuracy"]["rate"]
        rec[f"served@{tag}"] = rates["served"]["rate"]
        rec[f"SR_all@{tag}"] = rates["sr_all"]["rate"]
        rec[f"attack_failure@{tag}"] = rates["attack_failure"]["rate"]
    rec.update(auc=detection_auc(x_scores, adv_scores), misclassified=float(np.mean(goal_met)),
               mean_linf=float(np.mean(linf)), mean_l2=float(np.mean(l2)))
    return rec
