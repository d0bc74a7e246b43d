"""Lemesle & Vernade's objectives (label smoothing toward RCE, logit squeezing, OVM), the composed
objective, the cosine schedule, crop/flip augmentation and ObjectiveTrainer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rce_art as ra
from rce_art.data.augment import random_crop_flip
from rce_art.losses import (
    ComposedObjective,
    LogitSqueezingLoss,
    OutputVarianceLoss,
    RCESmoothingLoss,
    label_smoothing_cross_entropy,
    logit_squeezing,
    output_variance,
    output_variance_loss,
    rce_smoothing_loss,
    reverse_cross_entropy,
)
from rce_art.training import cosine_lr


def _log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def test_rce_smoothing_hand_values_and_lambda_zero_is_ce():
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    y = torch.tensor([1, 0])
    lp = [_log_softmax(r) for r in logits.tolist()]
    lam = 0.4
    # CE - lam * R_y^T log F with R_y = 1/(L-1) off the true class
    hand = [-lp[0][1] - lam * (lp[0][0] + lp[0][2]) / 2, -lp[1][0] - lam * (lp[1][1] + lp[1][2]) / 2]
    got = rce_smoothing_loss(logits, y, lam, reduction="none")
    assert got.tolist() == pytest.approx(hand, rel=1e-6)
    assert rce_smoothing_loss(logits, y, lam).item() == pytest.approx(sum(hand) / 2, rel=1e-6)
    assert torch.equal(rce_smoothing_loss(logits, y, 0.0), F.cross_entropy(logits, y))
    assert torch.equal(RCESmoothingLoss(0.0)(logits, y), F.cross_entropy(logits, y))


def test_large_rce_smoothing_approaches_rce_gradient_direction():
    torch.manual_seed(0)
    logits = torch.randn(16, 10, dtype=torch.float64)
    y = torch.randint(0, 10, (16,))

    def grad(fn):
        z = logits.clone().requires_grad_(True)
        fn(z).backward()
        return z.grad.flatten()

    g_rce = grad(lambda z: reverse_cross_entropy(z, y))
    cos = [F.cosine_similarity(grad(lambda z: rce_smoothing_loss(z, y, lam)), g_rce, dim=0).item()
           for lam in (0.0, 1.0, 100.0, 1e5)]
    assert cos[-1] > 0.99999 and cos[0] < 0.9  # approaches RCE's direction, starting away from it
    assert all(a <= b + 1e-12 for a, b in zip(cos, cos[1:]))


def test_standard_label_smoothing_is_szegedys():
    logits = torch.tensor([[1.0, 2.0, 0.0]])
    y = torch.tensor([1])
    lp = _log_softmax([1.0, 2.0, 0.0])
    eps = 0.3
    target = [eps / 3, 1 - eps + eps / 3, eps / 3]
    assert label_smoothing_cross_entropy(logits, y, eps).item() == pytest.approx(-sum(t * v for t, v in zip(target, lp)))
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\]"):
        label_smoothing_cross_entropy(logits, y, 1.5)


def test_logit_squeezing_values_zero_gradient_and_extreme_logits():
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    assert logit_squeezing(z, reduction="none").tolist() == pytest.approx([5.0, 0.0])
    assert logit_squeezing(z, squared=True, reduction="none").tolist() == pytest.approx([25.0, 0.0])
    logit_squeezing(z).backward()
    assert torch.isfinite(z.grad).all() and z.grad[1].abs().sum() == 0
    assert z.grad[0].tolist() == pytest.approx([0.3, 0.4])  # mean over 2 rows of z / ||z||
    big = torch.full((2, 10), 1e30, requires_grad=True)
    out = logit_squeezing(big)
    out.backward()
    assert math.isfinite(out.item()) and torch.isfinite(big.grad).all()
    assert LogitSqueezingLoss(squared=True)(torch.tensor([[1.0, 2.0]])).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        logit_squeezing(torch.tensor([[float("nan"), 1.0]]))


def _ovm_reference(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The report's formula written with loops, float64."""
    lp = F.log_softmax(logits.double(), dim=1)
    total = lp.new_zeros(())
    for c in y.unique():
        members = lp[y == c]
        if len(members) == 1:  # sqrt(0) has no derivative; the term is 0
            continue
        mean = members.mean(0)
        for row in members:
            total = total + torch.sqrt(((row - mean) ** 2).sum())
    return total / len(y)


def test_output_variance_hand_value_with_a_single_sample_class():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [5.0, -5.0, 0.0]])
    y = torch.tensor([0, 0, 2])  # class 2 has one sample: contributes 0
    a, b = _log_softmax([2.0, 0.0, -1.0]), _log_softmax([0.0, 1.0, 0.0])
    half = math.sqrt(sum(((u - v) / 2) ** 2 for u, v in zip(a, b)))  # each of the two is half the gap away
    assert output_variance(logits, y).item() == pytest.approx(2 * half / 3, rel=1e-6)
    single = output_variance(torch.tensor([[1.0, 2.0]]), torch.tensor([1]))
    assert single.item() == 0.0
    ce = F.cross_entropy(logits, y)
    assert output_variance_loss(logits, y, 0.5).item() == pytest.approx(ce.item() + 0.5 * 2 * half / 3, rel=1e-6)
    assert torch.equal(output_variance_loss(logits, y, 0.0), ce)
    assert torch.equal(OutputVarianceLoss(2.0)(logits, y), output_variance_loss(logits, y, 2.0))


def test_output_variance_gradient_flows_through_the_batch_mean():
    torch.manual_seed(1)
    logits = torch.randn(12, 5, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 0])
    z1, z2 = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    output_variance(z1, y).backward()
    _ovm_reference(z2, y).backward()
    assert torch.allclose(z1.grad, z2.grad, atol=1e-10)
    assert z1.grad[5].abs().sum() == 0  # class 2's single sample gets no gradient


def test_output_variance_stays_finite_on_extreme_logits():
    z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 1e4], [0.0, 0.0, 1e4]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])  # class 1's two rows are identical: zero deviation
    out = ComposedObjective(rce_smoothing=1.0, logit_squeezing=1.0, output_variance=1.0)(z, y)
    out.backward()
    assert math.isfinite(out.item()) and torch.isfinite(z.grad).all()


def test_composed_objective_is_ce_by_default_and_the_sum_of_its_terms():
    torch.manual_seed(2)
    z, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    assert torch.equal(ComposedObjective()(z, y), F.cross_entropy(z, y))
    obj = ComposedObjective(rce_smoothing=0.8, logit_squeezing=0.2, output_variance=1.0, label_smoothing=0.1)
    expected = (F.cross_entropy(z, y, label_smoothing=0.1) + 0.8 * reverse_cross_entropy(z, y)
                + 0.2 * logit_squeezing(z) + output_variance(z, y))
    assert obj(z, y).item() == pytest.approx(expected.item(), rel=1e-6)
    assert obj.settings()["rce_smoothing"] == 0.8 and "logit_squeezing=0.2" in repr(obj)
    with pytest.raises(ValueError, match="rce_smoothing must be a finite number >= 0"):
        ComposedObjective(rce_smoothing=-1)
    with pytest.raises(ValueError, match="label_smoothing"):
        ComposedObjective(label_smoothing=2)
    with pytest.raises(TypeError, match="integer class labels"):
        obj(z, y.float())


def test_cosine_schedule():
    assert cosine_lr(0, 100) == 1.0
    assert cosine_lr(50, 100) == pytest.approx(0.5)
    assert cosine_lr(100, 100) == pytest.approx(0.0)
    lr = ra.ObjectiveTrainer
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr(torch.nn.Linear(2, 2), schedule="step", clip_values=(0, 1))


def test_crop_flip_augmentation():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    assert torch.equal(random_crop_flip(x, padding=0, flip=False), x)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = random_crop_flip(x, padding=2, fill=-1.0, generator=g1), random_crop_flip(x, padding=2, fill=-1.0, generator=g2)
    assert torch.equal(a, b) and a.shape == x.shape
    values = set(a.unique().tolist())
    assert values <= set(x.unique().tolist()) | {-1.0}
    flipped = random_crop_flip(x, crop=False, flip=True, generator=torch.Generator().manual_seed(0))
    for i in range(2):  # each image is itself or its mirror
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_crop_flip(x[0])


def test_objective_trainer_default_equals_ce_trainer_and_reverse_wraps(digits):
    states = []
    for make in (lambda m: ra.CETrainer(m, epochs=2, batch_size=64, verbose=False),
                 lambda m: ra.ObjectiveTrainer(m, epochs=2, batch_size=64, verbose=False)):
        torch.manual_seed(0)
        net = ra.SmallCNN(1, 10)
        clf = ra.make_art_classifier(net, digits.input_shape, 10, digits.clip_values)
        make(clf).fit(digits.x_train[:256], digits.y_train[:256])
        states.append(net.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    net = ra.SmallCNN(1, 10)
    clf = ra.make_art_classifier(net, digits.input_shape, 10, digits.clip_values)
    trainer = ra.ObjectiveTrainer(clf, reverse_cross_entropy, reverse=True, epochs=2, batch_size=64, verbose=False,
                                  augment="crop-flip", schedule="cosine")
    trainer.fit(digits.x_train[:256], digits.y_train[:256])
    assert isinstance(trainer.get_model(), ra.ReverseLogits)
    assert trainer.history_.lr[0] == pytest.approx(0.1)
    with pytest.raises(TypeError, match="objective must be callable"):
        ra.ObjectiveTrainer(clf, objective=3)
    with pytest.raises(ValueError, match="augment must be None or one of"):
        ra.ObjectiveTrainer(clf, augment="rotate")
    assert np.isfinite(trainer.history_.loss).all()


@pytest.mark.parametrize("lam", [0.5, 20.0])
def test_rce_smoothing_minimiser_and_the_flip_at_l_minus_1(lam):
    n = 10
    y = torch.tensor([3])
    target = torch.full((1, n), lam / ((1 + lam) * (n - 1)), dtype=torch.float64)
    target[0, 3] = 1 / (1 + lam)
    z = target.log().requires_grad_(True)
    rce_smoothing_loss(z, y, lam).backward()
    assert z.grad.abs().max() < 1e-12  # stationary at the soft target
    assert (target.argmax().item() == 3) == (lam < n - 1)  # ordinary below L - 1, reversed above


def test_objective_trainer_warns_when_the_classifier_would_be_reversed(digits):
    clf = ra.make_art_classifier(ra.SmallCNN(1, 10), digits.input_shape, 10, digits.clip_values)
    trainer = ra.ObjectiveTrainer(clf, ComposedObjective(rce_smoothing=20.0), epochs=1, batch_size=64, verbose=False)
    with pytest.warns(UserWarning, match="pass reverse=True"):
        trainer.fit(digits.x_train[:64], digits.y_train[:64])
