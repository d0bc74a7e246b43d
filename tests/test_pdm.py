"""PDM losses, partner sampling and trainer."""

import numpy as np
import pytest
import torch

import rce_art as ra
from rce_art.training import PartnerSampler


def test_siamese_loss_zero_cases_and_positive_otherwise():
    z = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    assert ra.losses.siamese_cosine_loss(z, 2 * z, torch.ones(2)).item() == pytest.approx(0.0, abs=1e-7)  # same class, parallel
    ortho = torch.tensor([[-2.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert ra.losses.siamese_cosine_loss(z, ortho, torch.zeros(2)).item() == pytest.approx(0.0, abs=1e-7)  # different, orthogonal
    assert ra.losses.siamese_cosine_loss(z, ortho, torch.ones(2)).item() == pytest.approx(1.0)
    assert ra.losses.siamese_cosine_loss(z, z, torch.zeros(2)).item() == pytest.approx(1.0)
    assert ra.losses.SiameseCosineLoss()(z, ortho, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.5)


def test_rvl_zero_when_classes_collapse_and_hand_computed():
    z = torch.tensor([[1.0, 1.0], [1.0, 1.0], [5.0, 0.0]])
    assert ra.losses.reduce_variance_loss(z, torch.tensor([0, 0, 1])).item() == 0.0  # singleton class: 0, no NaN
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0], [0.0, 4.0], [9.0, 9.0]])
    y = torch.tensor([0, 0, 1, 1, 2])
    # class 0: mean (1,0), sigma = (1 + 1)/2 = 1; class 1: mean (0,2), sigma = (4 + 4)/2 = 4; class 2: 0
    assert ra.losses.reduce_variance_loss(z, y).item() == pytest.approx((1 + 4 + 0) / 3)
    assert torch.isfinite(ra.losses.ReduceVarianceLoss()(z, y))


def test_pdm_losses_reject_bad_input():
    with pytest.raises(ValueError, match="NaN or infinite"):
        ra.losses.reduce_variance_loss(torch.tensor([[float("nan")]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="same shape"):
        ra.losses.siamese_cosine_loss(torch.zeros(2, 3), torch.zeros(3, 3), torch.ones(2))


def test_partner_sampler_frequency_and_classes():
    y = np.repeat(np.arange(5), 40)
    s = PartnerSampler(y, q=0.3, seed=0)
    yb = torch.as_tensor(np.tile(np.arange(5), 2000))
    idx, cls, same = s.sample(yb)
    assert abs(same.mean().item() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / yb.numel())
    np.testing.assert_array_equal(y[idx.numpy()], cls.numpy())  # partner has the drawn class
    np.testing.assert_array_equal((cls == yb).numpy(), same.bool().numpy())
    with pytest.raises(ValueError, match="q must be in"):
        PartnerSampler(y, q=1.5)


def _train(digits, trainer_cls, epochs, n=None, **kw):
    torch.manual_seed(0)
    net = ra.SmallCNN(1, 10)
    trainer = trainer_cls(net, epochs=epochs, lr=0.1, batch_size=64, verbose=False, clip_values=digits.clip_values, **kw)
    return net, trainer.fit(digits.x_train[:n], digits.y_train[:n])


def _rvl(net, digits, space):
    net.eval()
    with torch.no_grad():
        z = net.logits_and_features(torch.as_tensor(digits.x_test))[1]
    z = torch.nn.functional.normalize(z, dim=1) if space == "unit" else z
    return ra.losses.reduce_variance_loss(z, torch.as_tensor(digits.y_test)).item()


@pytest.fixture(scope="module")
def rce_and_pdm(digits):
    return _train(digits, ra.RCETrainer, 10), _train(digits, ra.PDMTrainer, 10)


def test_pdm_training_reduces_rvl_and_keeps_accuracy(digits, rce_and_pdm):
    (rce_net, _), (pdm_net, pdm) = rce_and_pdm
    # the same training without the RVL and Siamese terms ends with a larger (normalised) class variance
    assert _rvl(pdm_net, digits, "unit") < _rvl(rce_net, digits, "unit")
    assert isinstance(pdm.get_model(), ra.ReverseLogits)
    acc = (pdm.get_classifier().predict(digits.x_test).argmax(1) == digits.y_test).mean()
    assert acc > 0.97


def test_pdm_raw_rvl_reduces_raw_variance(digits, rce_and_pdm):
    (rce_net, _), _ = rce_and_pdm
    raw_net, _ = _train(digits, ra.PDMTrainer, 3, n=512, rvl_space="raw")
    assert _rvl(raw_net, digits, "raw") < _rvl(rce_net, digits, "raw")


def test_pdm_trainer_parameters():
    with pytest.raises(ValueError, match="classification"):
        ra.PDMTrainer(torch.nn.Linear(2, 2), classification="mse")
    with pytest.raises(ValueError, match="rvl_space"):
        ra.PDMTrainer(torch.nn.Linear(2, 2), rvl_space="cosine")
    with pytest.raises(ValueError, match="q must be in"):
        ra.PDMTrainer(torch.nn.Linear(2, 2), q=-0.1)
