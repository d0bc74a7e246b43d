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
    attack = CarliniWagnerWB(max_iter=200, binary_search_steps=4, initial_const=0.1)
    return attack, attack.run(det, x, targets, targeted=True)


def test_margin_term_on_hand_example():
    z = torch.tensor([[-5.0, -1.0, -3.0]])  # all negative, as an RCE network's can be
    assert margin_term(z, torch.tensor([2]), 0.0, targeted=True).item() == pytest.approx(2.0)  # -1 - (-3)
    assert margin_term(z, torch.tensor([1]), 0.0, targeted=True).item() == pytest.approx(0.0)  # clamped at -kappa = 0
    assert margin_term(z, torch.tensor([1]), 10.0, targeted=True).item() == pytest.approx(-2.0)
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
    assert torch.isinf(r.l2[~r.success]).all() and torch.isfinite(r.l2[r.success]).all()


def test_cw_wb_raises_k_density_over_plain_cw(setup, result):
    det, _, _, targets = setup
    _, r = result
    both = r.success & (r.phase1_x_adv != setup[1]).flatten(1).any(1)
    assert both.sum() >= 3
    with torch.no_grad():
        kd_wb = det.log_density(r.x_adv[both], targets[both])
        kd_cw = det.log_density(r.phase1_x_adv[both], targets[both])
    assert (kd_wb >= kd_cw - 1e-4).all() and kd_wb.mean() > kd_cw.mean()


def test_success_does_not_drop_when_steps_double(setup):
    det, x, _, targets = setup
    s = ra.evaluation.cw_wb_sanity(CarliniWagnerWB(binary_search_steps=2, initial_const=0.1), det, x[:8], targets[:8],
                                   targeted=True, budgets=(25, 50, 100), unbounded_iter=200)
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

    from rce_art.adapters.cw_wb_art import CarliniWagnerWBAttack

    det, x, _, targets = setup
    attack = CarliniWagnerWBAttack(ce_trainer.get_classifier(), det, max_iter=50, binary_search_steps=2,
                                   initial_const=0.1, targeted=True, verbose=False)
    assert isinstance(attack, EvasionAttack) and "max_iter=50" in repr(attack)
    x_np = x[:6].numpy()
    out = attack.generate(x_np, targets[:6].numpy())
    assert out.shape == x_np.shape and out.dtype == np.float32 and attack.last_result_.success.shape == (6,)
    with pytest.raises(ValueError, match="target labels"):
        attack.generate(x_np)
    with pytest.raises(ValueError, match="max_iter"):
        CarliniWagnerWBAttack(ce_trainer.get_classifier(), det, max_iter=0)


def test_torchattacks_adapter(setup, ce_trainer):
    from rce_art.adapters.torchattacks_cw_wb import CWWB

    det, x, y, _ = setup
    atk = CWWB(ce_trainer.get_model(), det, max_iter=100, binary_search_steps=2, initial_const=1.0)
    out = atk(x[:6], y[:6])
    assert out.shape == (6, 1, 8, 8) and out.min() >= -0.5 and out.max() <= 0.5
    assert atk.last_result_.misclassified.float().mean() > 0.5
