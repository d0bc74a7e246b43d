"""Issue 30: the evaluation tests itself. Each check fires where it must and passes where it must not fire."""

import numpy as np
import pytest
import torch

import rce_art as ra
from rce_art.adapters import build_adaptive_attack
from rce_art.evaluation import (
    EnsembleAttack,
    WorstCaseEnsemble,
    binarization_test,
    bootstrap_operating_point,
    trivial_substitutes,
)
from rce_art.metrics import wilson_interval
from rce_art.report.active_checks import active_rows

STANDARD = ("apgd-ce", "pgd-selective", "square")  # the binary task drops APGD-T (it needs 4 classes)


def _weak(eps):
    """The deliberately weakened attack: one step of 1e-4, no random start."""
    return build_adaptive_attack("pgd-selective", eps, budget=0.02, step_size=1e-4, random_start=False)


@pytest.fixture(scope="module")
def conf(ce_trainer, digits):
    return ra.ConfidenceDetector(ce_trainer.get_classifier()).fit(digits.x_train, digits.y_train,
                                                                  x_calibration=digits.x_test[:200])


class _ConstantScore(ra.ConfidenceDetector):
    """A detector whose score ignores the input."""

    def score_features(self, logits, features):
        return 0.0 * logits.sum(1)


# ------------------------------------------------------------------------------------ no success left behind
class _LosesIt(EnsembleAttack):
    """A toolkit attack with broken bookkeeping: it evaluates breaking examples on the system, then returns x."""

    x0: torch.Tensor = None
    found: torch.Tensor = None

    def run(self, system, x, y):
        j = torch.cdist(x.flatten(1), self.x0.flatten(1)).argmin(1)  # the rows the ensemble still attacks
        with torch.no_grad():
            system.folded_logits(self.found[j], y)  # its iterates pass through the system
        return x


def test_no_success_is_left_behind(conf, digits):
    x, y = torch.as_tensor(digits.x_test[300:340]), torch.as_tensor(digits.y_test[300:340])
    strong = WorstCaseEnsemble([build_adaptive_attack("apgd-ce", 0.2)]).run(conf, x, y)
    loses = _LosesIt("loses-it", 0.2)
    loses.x0, loses.found = x, strong.x_adv
    kept = WorstCaseEnsemble([loses]).run(conf, x, y)
    lost = WorstCaseEnsemble([loses], keep_iterates=False).run(conf, x, y)
    clean = int((strong.attack == "clean").sum())
    assert strong.broken.sum() - clean >= 10
    assert kept.broken.sum() == strong.broken.sum() and lost.broken.sum() == clean  # must fire / must not
    assert kept.per_attack[0]["left_behind"] == strong.broken.sum() - clean
    assert WorstCaseEnsemble([build_adaptive_attack("apgd-ce", 0.2)]).run(conf, x, y).per_attack[0]["left_behind"] == 0
    report, flagged = conf.detect(kept.x_adv.numpy())
    np.testing.assert_array_equal(kept.broken, (report["predicted_class"] != y.numpy()) & ~flagged)
    assert np.abs(kept.x_adv.numpy() - x.numpy()).max() <= 0.2 + 1e-5
    rows = active_rows(eps=0.2, broken=kept.broken, left_behind={"loses-it": 7}, substitution=None, diag=None,
                       threshold=conf.threshold_, robust_accuracy={"rate": 0.1, "lo": 0.05, "hi": 0.2}, reference=None,
                       binarization=None)
    assert rows[0]["verdict"] == "WARN" and "loses-it 7" in rows[0]["evidence"]


# ------------------------------------------------------------------------------- trivial substitution bound
def test_trivial_substitutes_catch_a_weak_attack_and_not_a_strong_one(conf, digits):
    eps = 1.0  # the whole pixel range: every input has an unflagged input of another class within eps
    x, y = digits.x_test[300:330], digits.y_test[300:330]
    cand = np.concatenate([x, digits.x_test[200:300]])
    dist, idx = trivial_substitutes(conf, x, y, cand, fpr=0.05, candidates_include_x=True)
    assert (dist <= eps).all() and (idx != np.arange(len(x))).all()
    report, flagged = conf.detect(cand[idx])
    assert (report["predicted_class"] != y).all() and not flagged.any()  # each one breaks its input as it stands
    t = ra.detectors.calibrate_threshold(conf.calibration_scores_.numpy(), 0.05)
    for attack, verdict in ((_weak(eps), "WARN"), (build_adaptive_attack("apgd-ce", eps), "PASS")):
        r = WorstCaseEnsemble([attack]).run(conf, x, y, fpr=0.05)
        rows = active_rows(eps=eps, broken=r.broken, left_behind={}, substitution={"distance": dist.tolist()},
                           diag=None, threshold=t, robust_accuracy={"rate": 0, "lo": 0, "hi": 0}, reference=None,
                           binarization=None)
        assert rows[1]["check"] == "trivial substitutes are broken" and rows[1]["verdict"] == verdict, rows[1]
    small, _ = trivial_substitutes(conf, x, y, cand, fpr=0.05, candidates_include_x=True)
    assert (small > 0.2).all()  # at the evaluation's eps no digit is within reach of another: the check is silent


# ----------------------------------------------------------------------------------------- Tramer's bound
def test_tramer_bound_fires_only_when_the_claim_beats_the_reference():
    base = {"eps": 0.1, "broken": np.zeros(3, bool), "left_behind": {}, "substitution": None, "diag": None,
            "threshold": 0.0, "robust_accuracy": {"rate": 0.9, "lo": 0.85, "hi": 0.94}, "binarization": None}
    fires = active_rows(**base, reference=0.6)[-1]
    assert fires["verdict"] == "WARN" and "eps/2 = 0.05" in fires["evidence"] and "beat" in fires["evidence"]
    assert active_rows(**base, reference=0.9)[-1]["verdict"] == "PASS"
    assert len(active_rows(**base, reference=None)) == 1  # not checked without a reference
    from rce_art.evaluation import tramer_bound

    assert tramer_bound(base["robust_accuracy"], 0.6, 0.1)["implied"] == 0.85
    with pytest.raises(ValueError, match="rate, lo and hi"):
        tramer_bound({"rate": 0.5}, 0.6, 0.1)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        tramer_bound(base["robust_accuracy"], 1.5, 0.1)


# ------------------------------------------------------------------------------------- binarization test
def test_binarization_test_passes_the_standard_ensemble_and_fails_a_weak_attack(rce_detector, digits):
    eps = 0.2
    x, y = digits.x_test[300:400], digits.y_test[300:400]
    strong = binarization_test(rce_detector, x, y, [build_adaptive_attack(a, eps) for a in STANDARD], fpr=0.05,
                               n_inputs=8)
    assert strong.success.size >= 6 and strong.passed(), strong.evidence()
    assert strong.validation_inner.mean() >= 0.7 and not np.isnan(strong.validation_boundary).any()
    assert any(a.get("skipped") is None for a in strong.attacks)
    weak = binarization_test(rce_detector, x, y, [_weak(eps)], fpr=0.05, n_inputs=8)
    assert weak.success.size >= 6 and not weak.passed() and weak.rate()[0] < 0.5, weak.evidence()


def test_inverted_binarization_test_fails_a_detector_that_ignores_its_input(ce_trainer, conf, digits):
    eps = 0.2
    x, y = digits.x_test[300:400], digits.y_test[300:400]
    attacks = [build_adaptive_attack(a, eps) for a in STANDARD]
    const = _ConstantScore(ce_trainer.get_classifier()).fit(digits.x_train, digits.y_train,
                                                           x_calibration=digits.x_test[:200])
    dead = binarization_test(const, x, y, attacks, fpr=0.05, inverted=True, n_inputs=8)
    assert not dead.passed() and dead.n_failed == 8 and "no flagged point" in dead.evidence()
    alive = binarization_test(conf, x, y, attacks, fpr=0.05, inverted=True, n_inputs=8)
    assert alive.success.size >= 4 and alive.passed(), alive.evidence()
    rows = active_rows(eps=eps, broken=np.zeros(1, bool), left_behind={}, substitution=None, diag=None, threshold=0.0,
                       robust_accuracy={"rate": 0, "lo": 0, "hi": 0}, reference=None,
                       binarization={"test": alive.to_dict(), "inverted": dead.to_dict()})
    assert [r["verdict"] for r in rows[-2:]] == ["PASS", "WARN"]


# ------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_widens_with_a_small_calibration_set():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 10, n)
    pred = np.where(rng.random(n) < 0.95, y, (y + 1) % 10)
    score = rng.normal(size=n)
    adv_pred = np.where(rng.random(n) < 0.6, (y + 1) % 10, y)
    adv_score = rng.normal(-0.5, 1.0, n)
    held = rng.normal(size=500)
    small = rng.normal(size=20)
    wide = bootstrap_operating_point(y, pred, score, adv_pred, adv_score, small, held, 0.05)
    t = ra.detectors.calibrate_threshold(small, 0.05)
    kept = bootstrap_operating_point(y, pred, score, adv_pred, adv_score, small, held, 0.05, attacked_threshold=t)
    assert kept["robust_accuracy"]["rate"] == wide["robust_accuracy"]["rate"]  # the point estimate is the report's
    assert kept["robust_accuracy"]["hi"] < wide["robust_accuracy"]["hi"]  # no "no attack" upper end
    tight = bootstrap_operating_point(y, pred, score, adv_pred, adv_score, rng.normal(size=5000), held, 0.05)
    width = {k: (b[k]["hi"] - b[k]["lo"]) for b in (wide, tight) for k in ("realised_fpr",)}
    assert wide["realised_fpr"]["hi"] - wide["realised_fpr"]["lo"] > 2 * (
        tight["realised_fpr"]["hi"] - tight["realised_fpr"]["lo"]), width
    k = int(round(tight["realised_fpr"]["rate"] * held.size))
    lo, hi = wilson_interval(k, held.size)  # with a large calibration set the bootstrap matches Wilson's width
    assert abs((tight["realised_fpr"]["hi"] - tight["realised_fpr"]["lo"]) - (hi - lo)) < 0.02
    for b in (wide, tight):
        for key in ("robust_accuracy", "sr", "realised_fpr"):
            assert b[key]["lo"] <= b[key]["rate"] <= b[key]["hi"]
    with pytest.raises(ValueError, match="fpr"):
        bootstrap_operating_point(y, pred, score, adv_pred, adv_score, held, held, 1.5)


def test_apgd_returns_the_iterate_that_succeeded(ce_trainer, digits):
    """Found by "no success left behind" on digits: APGD recorded a success at a step-size checkpoint after resetting
    the iterate in place to the best-loss point, and returned that (unbroken) point; 2 of 340 inputs here."""
    from rce_art.attacks import APGD, DetectorAsClass

    det = ra.NonMEDetector(ce_trainer.get_classifier()).fit(digits.x_train, digits.y_train,
                                                            x_calibration=digits.x_test[:200])
    x, y = torch.as_tensor(digits.x_test[200:540]), torch.as_tensor(digits.y_test[200:540])
    system = DetectorAsClass(det, fpr=0.5)
    r = APGD(0.2, "linf", "ce", steps=50).run(system, x, y)
    with torch.no_grad():
        really = (system.folded_logits(r.x_adv, y).argmax(1) != y).numpy()
    np.testing.assert_array_equal(r.success.numpy(), really)  # every reported success is one
