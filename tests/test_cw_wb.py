"""The adaptive C&W-wb attack: objective, gradients, success bookkeeping, adapters."""

import numpy as np
import pytest
import torch

import rce_art as ra
from rce_art.attacks import CarliniWagnerWB, detector_term, margin_term
from rce_art.detectors.kernel import log_kdensity

N = 16


@pytest.fixture(scope="module")
def setup(digits, ce_trainer):
    # CE model: C&W-wb succeeds often enough to check the bookkeeping (against RCE it mostly fails, as in the paper)
    det = ra.KDensityDetector(ce_trainer.get_classifier(), seed=0).fit(
        digits.x_train, digits.y_train, x_calibration=digits.x_test[200:]
    )
    x = torch.as_tensor(digits.x_test[:N])
    y = torch.as_tensor(digits.y_test[:N])
    targets = (y + 1 + torch.arange(N) % 9) % 10
    return det, x, y, targets


@pytest.fixture(scope="module")
def result(setup):
    det, x, _, targets = setup
    attack = CarliniWagnerWB(max_iter=100, binary_search_steps=3, phase1_search_steps=2, targeted=True)
    return attack, attack.run(det, x, targets)


def test_margin_term_on_hand_example():
    z = torch.tensor([[-5.0, -1.0, -3.0]])  # all negative, as an RCE network's can be
    assert margin_term(z, torch.tensor([2]), 0.0, targeted=True).item() == pytest.approx(2.0)  # -1 - (-3)
    assert margin_term(z, torch.tensor([1]), 0.0, targeted=True).item() == pytest.approx(0.0)  # clamped at 0
    assert margin_term(z, torch.tensor([1]), 1.0, targeted=True).item() == pytest.approx(0.0)  # wins by 2 >= kappa
    assert margin_term(z, torch.tensor([1]), 10.0, targeted=True).item() == pytest.approx(8.0)  # non-negative form
    assert margin_term(z, torch.tensor([1]), 0.0, targeted=False).item() == pytest.approx(2.0)


def test_detector_term_gradcheck_float64_and_nonzero_where_active():
    g = torch.Generator().manual_seed(0)
    kernel = torch.randn(6, 4, generator=g, dtype=torch.float64)
    z = (3 + torch.randn(3, 4, generator=g, dtype=torch.float64)).requires_grad_(True)
    eta = torch.zeros(3, dtype=torch.float64)

    def f2(q):
        return detector_term(log_kdensity(q, kernel, 0.5), eta)

    assert (f2(z) > 0).all()  # active
    assert torch.autograd.gradcheck(f2, (z,))
    f2(z).sum().backward()
    assert torch.isfinite(z.grad).all() and (z.grad.abs().sum(1) > 0).all()


def test_outputs_in_bounds_and_success_as_defined(setup, result):
    det, x, _, targets = setup
    attack, r = result
    assert r.x_adv.shape == x.shape and r.x_adv.min() >= -0.5 and r.x_adv.max() <= 0.5
    with torch.no_grad():
        logits, feats = det.logits_and_features(r.x_adv)
        kernels = attack.attacker_kernels(det)
        eta = attack.etas(det, kernels)
        f2 = detector_term(ra.detectors.class_log_kdensity(feats, targets, kernels, det.bandwidth_), eta[targets])
    expected = (logits.argmax(1) == targets) & (f2 <= 0)
    assert torch.equal(r.success, expected)
    assert r.success.any()
    torch.testing.assert_close(r.l2, (r.x_adv - x).flatten(1).norm(dim=1))
    assert torch.equal(r.misclassified, logits.argmax(1) == targets)


def test_cw_wb_raises_k_density_over_plain_cw(setup, result):
    det, _, _, targets = setup
    _, r = result
    both = r.success & (r.phase1_x_adv != setup[1]).flatten(1).any(1)
    assert both.sum() >= 3
    with torch.no_grad():
        kd_wb = det.log_density(r.x_adv[both], targets[both])
        kd_cw = det.log_density(r.phase1_x_adv[both], targets[both])
    assert (kd_wb >= kd_cw - 1e-4).all() and kd_wb.mean() > kd_cw.mean()


@pytest.mark.slow  # ~5 s: run by .ci/run's slow step
def test_success_does_not_drop_when_steps_double(setup):
    det, x, _, targets = setup
    s = ra.evaluation.cw_wb_sanity(CarliniWagnerWB(binary_search_steps=2, phase1_search_steps=1), det, x[:8],
                                   targets[:8], targeted=True, budgets=(25, 50, 100), unbounded_iter=200)
    assert s["monotone"], s
    assert s["unbounded_misclassification"] == 1.0
    assert s["zero_grad_fraction"] == 0.0 and s["nonfinite_grad_fraction"] == 0.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"confidence": -1}, "confidence"),
        ({"binary_search_steps": 0}, "binary_search_steps"),
        ({"max_iter": 2.5}, "max_iter"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"initial_const": -1}, "initial_const"),
        ({"kernel_per_class": 0}, "kernel_per_class"),
        ({"phase1_const": 0}, "phase1_const"),
        ({"phase1_search_steps": 0}, "phase1_search_steps"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CarliniWagnerWB(**kwargs)


def test_repr_lists_parameters():
    text = repr(CarliniWagnerWB(confidence=5.0))
    assert "confidence=5.0" in text and "kernel_per_class=100" in text


def test_art_adapter(setup, ce_trainer):
    from art.attacks import EvasionAttack

    from rce_art.attacks import CarliniWagnerWBART

    det, x, _, targets = setup
    attack = CarliniWagnerWBART(ce_trainer.get_classifier(), det, max_iter=50, binary_search_steps=2,
                                phase1_search_steps=1, targeted=True, verbose=False)
    assert isinstance(attack, EvasionAttack) and "max_iter=50" in repr(attack)
    x_np = x[:6].numpy()
    out = attack.generate(x_np, targets[:6].numpy())
    assert out.shape == x_np.shape and out.dtype == np.float32 and attack.last_result_.success.shape == (6,)
    with pytest.raises(ValueError, match="target labels"):
        attack.generate(x_np)
    with pytest.raises(ValueError, match="max_iter"):
        CarliniWagnerWBART(ce_trainer.get_classifier(), det, max_iter=0)


def test_torchattacks_adapter(setup, ce_trainer):
    pytest.importorskip("torchattacks")
    from rce_art.attacks import CarliniWagnerWBTorchattacks

    det, x, y, _ = setup
    atk = CarliniWagnerWBTorchattacks(ce_trainer.get_model(), det, max_iter=100, binary_search_steps=2,
                                      phase1_search_steps=1)
    out = atk(x[:6], y[:6])
    assert out.shape == (6, 1, 8, 8) and out.min() >= -0.5 and out.max() <= 0.5
    assert atk.last_result_.misclassified.float().mean() > 0.5


# ---------------------------------------------------------------- defects fixed in 0.2 (issue: trustworthy core)
def test_phase2_failure_returns_target_classified_iterate_with_smallest_f2(setup):
    # eta so low that f2 > 0 everywhere: no iterate passes both tests; the returned example must be the
    # target-classified phase-2 iterate with the smallest f2 (authors' code), not the phase-1 example
    det, x, _, targets = setup
    attack = CarliniWagnerWB(max_iter=60, binary_search_steps=2, phase1_search_steps=2, eta=[-1e3] * 10, targeted=True)
    r = attack.run(det, x[:8], targets[:8])
    assert not r.success.any()
    reached = (r.phase1_x_adv != x[:8]).flatten(1).any(1)
    assert reached.sum() >= 4
    assert torch.equal(r.misclassified, reached)  # where phase 1 reached the target, so does the returned example
    with torch.no_grad():
        lk = det.log_density(r.x_adv[reached], targets[:8][reached])
        lk1 = det.log_density(r.phase1_x_adv[reached], targets[:8][reached])
    assert (lk >= lk1 - 1e-4).all() and lk.mean() > lk1.mean() + 0.1
    assert torch.equal(r.x_adv[~reached], x[:8][~reached])  # nothing reached the target: the input itself


def test_each_phase_has_its_own_binary_search(setup, monkeypatch):
    det, x, _, targets = setup
    calls = []
    original = CarliniWagnerWB._search

    def spy(self, *args):
        calls.append(args[-2:])
        return original(self, *args)

    monkeypatch.setattr(CarliniWagnerWB, "_search", spy)
    CarliniWagnerWB(max_iter=5, initial_const=100.0, binary_search_steps=2, phase1_const=10.0,
                    phase1_search_steps=1, targeted=True).run(det, x[:2], targets[:2])
    assert calls == [(10.0, 1), (100.0, 2)]
    defaults = CarliniWagnerWB()
    assert (defaults.phase1_const, defaults.phase1_search_steps) == (10.0, 3)  # the authors' code
    assert (defaults.initial_const, defaults.binary_search_steps) == (100.0, 9)


def test_early_abort_fires_with_positive_kappa(setup, monkeypatch):
    det, x, _, _ = setup
    with torch.no_grad():
        logits = det.logits_and_features(x)[0]
    top2 = logits.topk(2, dim=1).values
    keep = (top2[:, 0] - top2[:, 1]) > 2.0  # already classified with a margin above kappa = 1
    assert keep.sum() >= 4
    xs, pred = x[keep], logits.argmax(1)[keep]
    calls = []
    inner = det.logits_and_features
    monkeypatch.setattr(det, "logits_and_features", lambda z: (calls.append(1), inner(z))[1])
    attack = CarliniWagnerWB(confidence=1.0, max_iter=100, binary_search_steps=2, two_phase=False, eta=[1e6] * 10,
                             targeted=True)
    r = attack.run(det, xs, pred)
    assert r.success.all()
    # the loss sits at its floor 0: each round stops at its second check (step 20 of 100); + the final check.
    # With the old negative margin (-kappa) the loss kept "improving" and every round ran all 100 steps.
    assert len(calls) <= 2 * 30 + 1


def test_attack_and_sanity_run_in_eval_mode_and_restore_it(digits, setup):
    det, x, _, targets = setup
    model = det.model
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn
    attack = CarliniWagnerWB(max_iter=20, binary_search_steps=1, phase1_search_steps=1, targeted=True)
    ref = attack.run(det, x[:4], targets[:4])
    with pytest.warns(DeprecationWarning, match="to the constructor"):  # 0.6's call shape, until 0.8
        old = CarliniWagnerWB(**{**attack.params(), "targeted": False}).run(det, x[:4], targets[:4], targeted=True)
    torch.testing.assert_close(old.x_adv, ref.x_adv)
    stats = [m.running_mean.clone() for m in bn]
    model.train()
    try:
        r = attack.run(det, x[:4], targets[:4])
        assert model.training and all(m.training for m in model.modules())
        ra.evaluation.cw_wb_sanity(attack, det, x[:2], targets[:2], targeted=True, budgets=(5,), unbounded_iter=5)
        assert model.training and all(m.training for m in model.modules())
    finally:
        model.eval()
    assert all(torch.equal(s, m.running_mean) for s, m in zip(stats, bn))  # BatchNorm statistics untouched
    torch.testing.assert_close(r.x_adv, ref.x_adv)  # same result as in eval mode


def test_attack_and_sanity_checks_leave_the_weights_without_gradients(digits, setup):
    """0.6 ran C&W-wb's backward through the weights every step (and left .grad on them), as did both sanity checks."""
    det, x, y, targets = setup
    weights = list(det.model.parameters())
    for p in weights:
        p.grad = None
    attack = CarliniWagnerWB(max_iter=5, binary_search_steps=1, phase1_search_steps=1, targeted=True)
    attack.run(det, x[:4], targets[:4])
    ra.evaluation.cw_wb_sanity(attack, det, x[:2], targets[:2], targeted=True, budgets=(2,), unbounded_iter=2)
    ra.evaluation.detector_pgd_sanity(ra.DetectorPGD(0.1, steps=2), det, x[:2], y[:2], budgets=(1,), unbounded_steps=1)
    assert all(p.grad is None for p in weights)
