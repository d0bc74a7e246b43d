"""Orthogonal / selective PGD against detectors, and the fixed-FPR success metrics."""

import numpy as np
import pytest
import torch

import rce_art as ra
from rce_art.attacks import DetectorPGD, classifier_margin, orthogonalise
from rce_art.evaluation import attack_failure_rate, success_at_fpr


@pytest.fixture(scope="module")
def det(digits, ce_trainer):
    return ra.KDensityDetector(ce_trainer.get_classifier(), n_per_class=100).fit(
        digits.x_train, digits.y_train, x_calibration=digits.x_test[200:])


def test_orthogonalise_removes_the_component_per_example():
    g = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    o = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    p = orthogonalise(g, o)
    torch.testing.assert_close((p * o).flatten(1).sum(1), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(orthogonalise(o, o), torch.zeros_like(o), atol=1e-12, rtol=0)


def test_orthogonal_step_is_orthogonal_to_the_other_gradient(digits, det):
    attack = DetectorPGD(0.2, mode="orthogonal")
    x = torch.as_tensor(digits.x_test[:8])
    y = torch.as_tensor(digits.y_test[:8])
    gm, gd, m, _, _ = attack.gradients(det, x, y)
    m = m.clone()
    m[:4] = -1.0  # the first four are past the margin: they step on the detector, the others on the classifier
    step = attack._direction(gm, gd, m).flatten(1).double()
    gm, gd = gm.flatten(1).double(), gd.flatten(1).double()
    cos_d = (step[:4] * gm[:4]).sum(1) / (step[:4].norm(dim=1) * gm[:4].norm(dim=1))
    cos_c = (step[4:] * gd[4:]).sum(1) / (step[4:].norm(dim=1) * gd[4:].norm(dim=1))
    assert cos_d.abs().max() < 1e-4 and cos_c.abs().max() < 1e-4
    assert ((step[:4] * gd[:4]).sum(1) > 0).all() and ((step[4:] * gm[4:]).sum(1) > 0).all()  # still descent


def test_selective_switches_exactly_at_the_margin(digits, det):
    attack = DetectorPGD(0.2, mode="selective", margin=0.5)
    x, y = torch.as_tensor(digits.x_test[:3]), torch.as_tensor(digits.y_test[:3])
    gm, gd, _, _, _ = attack.gradients(det, x, y)
    m = torch.tensor([-0.51, -0.5, 0.3])  # past the margin, at it, not misclassified
    step = attack._direction(gm, gd, m)
    for i, g in enumerate((gd, gm, gm)):
        torch.testing.assert_close(step[i], attack._step(g[i : i + 1], use_sign=False)[0])


def test_outputs_within_ball_and_clip_and_best_iterate_returned(digits, det):
    x, y = digits.x_test[:16], digits.y_test[:16]
    for norm, eps in (("linf", 0.15), ("l2", 1.0)):
        r = DetectorPGD(eps, norm=norm, mode="selective", steps=20, restarts=2).run(det, torch.as_tensor(x), torch.as_tensor(y))
        d = (r.x_adv - torch.as_tensor(x)).flatten(1)
        bound = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
        assert (bound <= eps + 1e-5).all() and r.x_adv.min() >= -0.5 and r.x_adv.max() <= 0.5
        with torch.no_grad():
            logits, score = det.logits_and_score(r.x_adv)
        torch.testing.assert_close(score, r.score)
        assert torch.equal(r.misclassified, classifier_margin(logits, torch.as_tensor(y), False) < 0)


def test_best_iterate_beats_the_last_one(digits, det, monkeypatch):
    # the score of the returned example is the highest among misclassified iterates: at least the last one's
    x, y = torch.as_tensor(digits.x_test[:16]), torch.as_tensor(digits.y_test[:16])
    seen = []
    original = DetectorPGD.gradients

    def spy(self, detector, xa, labels, need_grad=True):
        out = original(self, detector, xa, labels, need_grad)
        seen.append((out[2] < 0, out[3]))
        return out

    monkeypatch.setattr(DetectorPGD, "gradients", spy)
    r = DetectorPGD(0.2, mode="selective", steps=15, random_start=False).run(det, x, y)
    ok = torch.stack([s[0] for s in seen])
    scores = torch.stack([s[1] for s in seen]).masked_fill(~ok, -float("inf"))
    assert r.misclassified.any()
    torch.testing.assert_close(r.score[r.misclassified], scores.amax(0)[r.misclassified], rtol=1e-5, atol=1e-5)


def test_constant_score_detector_is_evaded_like_the_plain_attack(digits, ce_trainer):
    class Constant(ra.ConfidenceDetector):
        def score_features(self, logits, features):
            return logits.sum(1) * 0.0 + 1.0

    clf = ce_trainer.get_classifier()
    det = Constant(clf).fit(digits.x_test[200:])
    x, y = torch.as_tensor(digits.x_test[:16]), torch.as_tensor(digits.y_test[:16])
    plain = DetectorPGD(0.2, mode="classifier", steps=40, random_start=False).run(det, x, y)
    for mode in ("selective", "orthogonal"):
        r = DetectorPGD(0.2, mode=mode, steps=40, random_start=False).run(det, x, y)
        assert abs(float(r.misclassified.float().mean()) - float(plain.misclassified.float().mean())) <= 0.13


def test_success_at_fpr_and_attack_failure_rate_on_hand_made_scores():
    clean = np.arange(100, dtype=float)  # 5% FPR -> threshold 5.0, 50% -> 50.0
    adv = np.array([4.0, 5.0, 49.0, 60.0])
    goal = np.array([True, True, True, False])
    assert success_at_fpr(clean, adv, goal, 0.05) == pytest.approx(2 / 4)  # 5.0 and 49.0 pass, 4.0 is flagged
    assert success_at_fpr(clean, adv, goal, 0.5) == pytest.approx(0.0)
    assert attack_failure_rate(np.array([1, 2, 3, 4]), np.array([1, 0, 0, 0]),
                               np.array([False, True, False, False])) == pytest.approx(0.5)


def test_parameters_and_global_rng(digits, det):
    with pytest.raises(ValueError, match="mode"):
        DetectorPGD(0.1, mode="fancy")
    with pytest.raises(ValueError, match="norm"):
        DetectorPGD(0.1, norm="l1")
    with pytest.raises(ValueError, match="eps"):
        DetectorPGD(0.0)
    torch.manual_seed(3)
    before = torch.rand(2)
    torch.manual_seed(3)
    DetectorPGD(0.1, steps=2).run(det, torch.as_tensor(digits.x_test[:4]), torch.as_tensor(digits.y_test[:4]))
    assert torch.equal(torch.rand(2), before)


@pytest.mark.parametrize("name", ["kd", "mahalanobis", "confidence"])
def test_sanity_checks_pass_for_attack_detector_pairs(name, digits, ce_trainer):
    clf = ce_trainer.get_classifier()
    cal = digits.x_test[200:]
    det = {"kd": lambda: ra.KDensityDetector(clf, n_per_class=100),
           "mahalanobis": lambda: ra.MahalanobisDetector(clf),
           "confidence": lambda: ra.ConfidenceDetector(clf)}[name]().fit(digits.x_train, digits.y_train,
                                                                          x_calibration=cal)
    x, y = digits.x_test[:12], digits.y_test[:12]
    s = ra.evaluation.detector_pgd_sanity(DetectorPGD(0.2, mode="selective", random_start=False), det, x, y,
                                          budgets=(5, 10, 20), unbounded_steps=60)
    assert s["monotone"], s
    assert s["unbounded_misclassification"] == 1.0
    assert s["zero_grad_fraction"] == 0.0 and s["nonfinite_grad_fraction"] == 0.0


def test_targeted_attack_toward_class_zero_is_not_treated_as_untargeted(digits, det):
    # a known trap of reference code: target 0 read as "no target"
    keep = digits.y_test[:40] != 0
    x, t = torch.as_tensor(digits.x_test[:40][keep][:12]), torch.zeros(12, dtype=torch.long)
    r = DetectorPGD(0.3, mode="classifier", steps=40, targeted=True, random_start=False).run(det, x, t)
    with torch.no_grad():
        pred = det.logits_and_score(r.x_adv)[0].argmax(1)
    assert torch.equal(r.misclassified, pred == 0) and r.misclassified.float().mean() > 0.7


def test_oblivious_mode_never_lets_the_detector_pick_its_output(digits, ce_trainer, det):
    """0.3 returned the misclassified iterate with the highest *detector* score in every mode (KD SR@5 0.430 vs
    0.035 with the detector hidden): the oblivious baseline's examples must not depend on the detector."""

    class Counting(ra.NonMEDetector):
        calls = 0

        def logits_and_score(self, x):
            type(self).calls += 1
            return super().logits_and_score(x)

    other = Counting(ce_trainer.get_classifier()).fit(digits.x_train[:100], x_calibration=digits.x_test[200:])
    x, y = torch.as_tensor(digits.x_test[:32]), torch.as_tensor(digits.y_test[:32])
    attack = DetectorPGD(0.15, mode="classifier", steps=10)
    a, b = attack.run(det, x, y), attack.run(other, x, y)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.misclassified, b.misclassified)
    assert Counting.calls == 1  # once, to report the score of what was returned
    # the returned iterate is the misclassified one with the largest classifier margin
    from rce_art.attacks import classifier_logits

    with torch.no_grad():
        m = classifier_margin(classifier_logits(det, a.x_adv), y, False)
    assert (m[a.misclassified] < 0).all()


def test_eot_averages_independent_mask_draws_and_keeps_draw_zero_for_bookkeeping(digits, dropout_clf):
    """0.3 re-seeded one mask set, so eot_samples=8 gave the gradient of eot_samples=1 (difference 1.9e-9)."""
    clf = dropout_clf
    bu = ra.BayesianUncertaintyDetector(clf, mc_samples=10).fit(digits.x_train[:200], digits.y_train[:200],
                                                                   x_calibration=digits.x_test[200:])
    x, y = torch.as_tensor(digits.x_test[:8]), torch.as_tensor(digits.y_test[:8])
    one = DetectorPGD(0.1, mode="orthogonal", eot_samples=1)  # computes both gradients (selective: the one it uses)
    eight = DetectorPGD(0.1, mode="orthogonal", eot_samples=8)
    g1, gd1, _, s1, _ = one.gradients(bu, x, y)
    g8, gd8, _, s8, _ = eight.gradients(bu, x, y)
    torch.testing.assert_close(s1, s8)  # the score kept for the best iterate is draw 0's, what detect() computes
    torch.testing.assert_close(s1.double(), torch.as_tensor(bu.score(x.numpy())), rtol=1e-5, atol=1e-7)
    rel = (gd8 - gd1).flatten(1).norm(dim=1) / gd1.flatten(1).norm(dim=1)
    assert (rel > 0.05).all()  # other draws: another gradient
    with bu.eot_draw(3):
        s3 = bu.logits_and_score(x)[1].detach()
    assert (s3 - s1).abs().max() > 1e-3 * s1.abs().max()
    torch.testing.assert_close(bu.logits_and_score(x)[1].detach(), s1)  # the context restores draw 0
