"""The detector as an extra class and the per-input worst-case runner (issue 20)."""

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

import rce_art as ra
from rce_art.adapters import ADAPTIVE_ATTACKS, STANDARD_ENSEMBLE, build_adaptive_attack, standard_ensemble
from rce_art.attacks import DetectorAsClass, system_success
from rce_art.evaluation import EnsembleAttack, WorstCaseEnsemble, count_network_passes
from rce_art.exceptions import GradientMaskingWarning
from rce_art.metrics import wilson_interval


@pytest.fixture(scope="module")
def det(digits, ce_trainer):
    return ra.KDensityDetector(ce_trainer.get_classifier(), n_per_class=40, seed=0).fit(
        digits.x_train, digits.y_train, x_calibration=digits.x_test[:200])


@dataclass
class Recorder(EnsembleAttack):
    """A fake attack: returns fixed candidates and records which inputs it was given."""

    table: dict = field(default_factory=dict)  # input row bytes -> candidate
    seen: list = field(default_factory=list)
    kind_: str = "gradient"

    def __post_init__(self):
        self.kind = self.kind_

    def run(self, system, x, y):
        self.seen += [r.numpy().tobytes() for r in x.cpu()]
        return torch.stack([torch.as_tensor(self.table.get(r.numpy().tobytes(), r.numpy())) for r in x.cpu()])


def test_extra_logit_wins_exactly_when_flagged_and_is_differentiable(det, digits):
    x = torch.as_tensor(digits.x_test[200:400])
    for fpr in (0.05, 0.5):
        system = DetectorAsClass(det, fpr=fpr)
        with torch.no_grad():
            out = system(x)
        scores = det.score(x.numpy())
        flagged = scores < ra.detectors.calibrate_threshold(det.calibration_scores_.numpy(), fpr)
        assert 0 < flagged.sum() < len(flagged)
        np.testing.assert_array_equal(to_np(out.argmax(1) == 10), flagged)
        top = out[:, :10].amax(1)
        assert bool(((out[:, 10] > top) == torch.as_tensor(flagged)).all())  # strict both ways: no ties
    xg = x[:16].clone().requires_grad_(True)
    DetectorAsClass(det)(xg)[:, 10].sum().backward()
    assert torch.isfinite(xg.grad).all() and (xg.grad.flatten(1).abs().sum(1) > 0).all()


def to_np(t):
    return t.detach().cpu().numpy()


def test_extra_class_never_counts_as_success(det, digits):
    logits = torch.tensor([[5.0, 1.0, 9.0], [5.0, 1.0, 0.0], [1.0, 5.0, 0.0], [1.0, 5.0, 9.0]])  # L = 2, extra last
    y = torch.tensor([0, 0, 0, 0])
    assert system_success(logits, y).tolist() == [False, False, True, False]
    assert system_success(logits, torch.tensor([1, 1, 1, 1]), targeted=True).tolist() == [False, False, True, False]
    # folded for true class c: argmax != c exactly when the system succeeds
    system = DetectorAsClass(det, fpr=0.5)
    x = torch.as_tensor(digits.x_test[200:400])
    y = torch.as_tensor(digits.y_test[200:400])
    with torch.no_grad():
        ok = system_success(system(x), y)
        for c in range(10):
            rows = y == c
            assert torch.equal(system.folded(c)(x[rows]).argmax(1) != c, ok[rows])


def test_runner_attacks_only_the_unbroken_inputs_and_records_who_broke_what(det, digits):
    x, y = digits.x_test[200:240], digits.y_test[200:240]
    system = DetectorAsClass(det)
    # candidates that break: a strong PGD on the system, computed once
    adv = ra.DetectorPGD(0.1, mode="selective", steps=10).run(det, torch.as_tensor(x), torch.as_tensor(y)).x_adv
    with torch.no_grad():
        good = to_np(system_success(system(adv), torch.as_tensor(y)))
    assert 3 <= good.sum() <= 37
    half = np.flatnonzero(good)[: good.sum() // 2]
    first = Recorder("first", eps=0.3, table={x[i].tobytes(): adv[i].numpy() for i in half})
    second = Recorder("second", eps=0.3, table={x[i].tobytes(): adv[i].numpy() for i in np.flatnonzero(good)})
    r = WorstCaseEnsemble([first, second], batch_size=7).run(det, x, y)
    clean = r.attack == "clean"
    assert len(first.seen) == int((~clean).sum())  # every input not broken clean
    assert set(second.seen) == {x[i].tobytes() for i in np.flatnonzero(~clean & ~np.isin(np.arange(40), half))}
    assert (r.attack[half] == "first").all()
    rest = np.setdiff1d(np.flatnonzero(good & ~clean), half)
    assert (r.attack[rest] == "second").all() and r.broken[good | clean].all() and r.broken.sum() == (good | clean).sum()
    # the records say what the detector says about the returned examples
    report, flagged = det.detect(r.x_adv.numpy())
    np.testing.assert_array_equal(r.broken, (report["predicted_class"] != y) & ~flagged)
    assert r.rate()[3] == 40 and r.rate()[1] <= r.rate()[0] <= r.rate()[2]


def test_runner_warns_of_gradient_masking_and_projects_out_of_budget_examples(det, digits):
    x, y = digits.x_test[200:230], digits.y_test[200:230]
    adv = ra.DetectorPGD(0.3, mode="selective", steps=30).run(det, torch.as_tensor(x), torch.as_tensor(y)).x_adv
    table = {x[i].tobytes(): adv[i].numpy() for i in range(len(x))}
    grad = Recorder("gradient-nothing", eps=0.3)
    free = Recorder("score-based", eps=0.3, table=table, kind_="score")
    with pytest.warns(GradientMaskingWarning, match="gradient-free attack"):
        r = WorstCaseEnsemble([grad, free]).run(det, x, y)
    assert r.masking.sum() == (r.attack == "score-based").sum() > 0
    far = Recorder("too-far", eps=0.05, table={x[i].tobytes(): np.clip(x[i] + 0.2, -0.5, 0.5) for i in range(len(x))})
    with pytest.warns(RuntimeWarning, match="projected back"):
        r = WorstCaseEnsemble([far]).run(det, x, y)
    assert r.linf.max() <= 0.05 + 1e-6


def test_eot_keeps_draw_zeros_value_and_averages_gradients(digits, dropout_clf):
    clf = dropout_clf
    bu = ra.BayesianUncertaintyDetector(clf, mc_samples=5).fit(digits.x_train, digits.y_train,
                                                             x_calibration=digits.x_test[:100])
    x = torch.as_tensor(digits.x_test[100:108])
    one, three = DetectorAsClass(bu), DetectorAsClass(bu, eot_samples=3)
    with torch.no_grad():
        torch.testing.assert_close(one(x), three(x))  # the value is draw 0's: the equivalence with detect holds
    grads = []
    for draw in range(3):
        xg = x.clone().requires_grad_(True)
        with bu.eot_draw(draw):
            bu.logits_and_score(xg)[1].sum().backward()
        grads.append(xg.grad)
    xg = x.clone().requires_grad_(True)
    three.logits_and_score(xg)[1].sum().backward()
    torch.testing.assert_close(xg.grad, sum(grads) / 3)


def test_registry_builds_every_attack_and_rejects_bad_names(det):
    for name in ADAPTIVE_ATTACKS:
        a = build_adaptive_attack(name, 0.1, budget=2)
        assert a.budget == 2 and a.scaled(5).budget == 10 and "eps=0.1" in a.describe() and "budget=2" in a.describe()
    assert [a.name for a in standard_ensemble(0.1)] == list(STANDARD_ENSEMBLE)
    with pytest.raises(ValueError, match="unknown adaptive attack"):
        build_adaptive_attack("apgd", 0.1)
    with pytest.raises(ValueError, match="norm"):
        build_adaptive_attack("apgd-ce", 0.1, norm="l1")
    with pytest.raises(ValueError, match="eps"):
        build_adaptive_attack("apgd-ce", -1.0)
    with pytest.raises(ValueError, match="share one eps"):
        WorstCaseEnsemble([build_adaptive_attack("apgd-ce", 0.1), build_adaptive_attack("square", 0.2)])
    assert not build_adaptive_attack("cw-wb", 0.1).applies_to(ra.ConfidenceDetector(det.classifier))


def test_network_pass_counter_counts_rows_and_removes_its_hooks(ce_trainer, digits):
    net = ce_trainer.get_model()
    x = torch.as_tensor(digits.x_test[:5], dtype=torch.float32).requires_grad_(True)
    with count_network_passes(net) as c:
        net(x).sum().backward()
        with torch.no_grad():
            net(x[:3])
    assert c == {"forward": 8, "backward": 5, "forward_calls": 2, "backward_calls": 1}
    assert all(not m._forward_hooks for m in net.modules())


def test_wilson_interval_matches_known_values():
    lo, hi = wilson_interval(50, 100)
    assert abs(lo - 0.4038) < 1e-4 and abs(hi - 0.5962) < 1e-4
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(5, 3)
