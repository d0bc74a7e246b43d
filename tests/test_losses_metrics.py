import math

import numpy as np
import pytest
import torch

import rce_art as ra


def test_rce_matches_hand_computed_three_class_example():
    z = torch.tensor([[1.0, 2.0, 0.5]])
    y = torch.tensor([1])
    p = np.exp([1.0, 2.0, 0.5]) / np.exp([1.0, 2.0, 0.5]).sum()
    expected = -(0.5 * math.log(p[0]) + 0.0 * math.log(p[1]) + 0.5 * math.log(p[2]))
    assert ra.losses.reverse_cross_entropy(z, y).item() == pytest.approx(expected, rel=1e-6)


def test_rce_reductions_and_module():
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 0])
    per = ra.losses.reverse_cross_entropy(z, y, reduction="none")
    assert per.shape == (5,)
    assert ra.losses.reverse_cross_entropy(z, y, reduction="sum").item() == pytest.approx(per.sum().item(), rel=1e-6)
    assert ra.losses.ReverseCrossEntropyLoss()(z, y).item() == pytest.approx(per.mean().item(), rel=1e-6)


def test_rce_minimum_is_reverse_label():
    # The loss is smallest when softmax(Z) equals R_y: zero on y, uniform elsewhere.
    y = torch.tensor([2])
    good = torch.tensor([[0.0, 0.0, -30.0, 0.0]])
    bad = torch.tensor([[0.0, 0.0, 5.0, 0.0]])
    assert ra.losses.reverse_cross_entropy(good, y) < ra.losses.reverse_cross_entropy(bad, y)
    assert ra.losses.reverse_cross_entropy(good, y).item() == pytest.approx(math.log(3), abs=1e-6)


def test_reverse_logits_argmax_is_argmin_of_softmax():
    z = torch.randn(50, 10, generator=torch.Generator().manual_seed(1))
    model = ra.ReverseLogits(torch.nn.Identity(), layer="")
    assert torch.equal(model(z).argmax(1), torch.softmax(z, 1).argmin(1))


def test_non_me_hand_example_and_bounds():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    # non-max elements renormalised: 2/3, 1/3
    expected = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert ra.metrics.non_me(logits).item() == pytest.approx(expected, rel=1e-5)
    uniform_rest = torch.tensor([[5.0, 0.0, 0.0, 0.0]])
    assert ra.metrics.non_me(uniform_rest).item() == pytest.approx(math.log(3), rel=1e-6)
    assert ra.metrics.confidence(logits).item() == pytest.approx(0.7, rel=1e-5)


def test_metrics_stay_finite_when_probabilities_underflow():
    logits = torch.tensor([[0.0, -2000.0, -1000.0], [3000.0, 0.0, 0.0]], requires_grad=True)
    v = ra.metrics.non_me(logits)
    assert torch.isfinite(v).all()
    v.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert torch.isfinite(ra.metrics.confidence(logits)).all()
