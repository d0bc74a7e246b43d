"""The detector family against hand-computed and brute-force references."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import rce_art as ra
from rce_art.detectors import (
    LogisticCombiner,
    class_gaussians,
    lid_mle,
    mahalanobis_score,
    matched_gaussian_noise,
    mc_dropout_uncertainty,
)


def reference_lid(queries: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """The published algorithm (Ma et al.'s ``mle_batch``): cdist, sort, k nearest, -k / sum log(r_i / r_k)."""
    d = cdist(queries, reference)
    d = np.sort(np.where(d == 0, np.inf, d), axis=1)[:, :k]
    return -k / np.sum(np.log(d / d[:, -1:]), axis=1)


def test_lid_hand_computed_and_against_the_published_algorithm():
    # reference points at distances 1, 2, ..., 5 from the origin along one axis: LID = -5 / sum log(i / 5)
    ref = torch.tensor([[float(i), 0.0] for i in range(1, 7)], dtype=torch.float64)
    got = lid_mle(torch.zeros(1, 2, dtype=torch.float64), ref, k=5).item()
    assert got == pytest.approx(-5 / sum(math.log(i / 5) for i in range(1, 6)))
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(40, 30)), rng.normal(size=(100, 30))
    np.testing.assert_allclose(lid_mle(torch.tensor(q), torch.tensor(r), 20).numpy(), reference_lid(q, r, 20), rtol=1e-4)
    # a query inside the reference set skips itself (distance 0), as Ma et al.'s code drops column 0
    np.testing.assert_allclose(lid_mle(torch.tensor(r[:5]), torch.tensor(r), 20).numpy(), reference_lid(r[:5], r, 20),
                               rtol=1e-4)


def test_lid_grows_with_the_dimension_of_the_data():
    g = torch.Generator().manual_seed(0)
    low = torch.randn(2000, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 20, generator=g, dtype=torch.float64)
    high = torch.randn(2000, 20, generator=g, dtype=torch.float64)
    assert lid_mle(low[:50], low[50:], 20).mean() < 4 < 12 < lid_mle(high[:50], high[50:], 20).mean()


def test_mahalanobis_against_float64_reference_and_sklearn():
    from sklearn.covariance import EmpiricalCovariance

    rng = np.random.default_rng(0)
    f = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    y = rng.integers(0, 3, 300)
    means, precision = class_gaussians(torch.tensor(f), torch.tensor(y), 3)
    mu = np.stack([f[y == c].mean(0) for c in range(3)])
    sk = EmpiricalCovariance(assume_centered=True).fit(f - mu[y])
    np.testing.assert_allclose(means.numpy(), mu, rtol=1e-10)
    np.testing.assert_allclose(precision.numpy(), sk.precision_, rtol=1e-6)
    q = rng.normal(size=(10, 6))
    ref = np.array([max(-0.5 * (v - m) @ sk.precision_ @ (v - m) for m in mu) for v in q])
    np.testing.assert_allclose(mahalanobis_score(torch.tensor(q), means, precision).numpy(), ref, rtol=1e-8)


def test_mc_dropout_uncertainty_is_feinmans_formula_and_matches_a_loop():
    torch.manual_seed(0)
    net = ra.SmallCNN(1, 4, dropout=0.5).eval()
    x = torch.rand(3, 1, 8, 8) - 0.5
    u = mc_dropout_uncertainty(net, x, samples=30, seed=1)
    # the same passes (same seed), Feinman's U = mean_t p_t.p_t - pbar.pbar, over the number of classes
    with torch.random.fork_rng():
        torch.manual_seed(1)
        net.drop.train()
        p = net(x.repeat(30, 1, 1, 1)).softmax(1).view(30, 3, 4)
        net.drop.eval()
    explicit = ((p * p).sum(2).mean(0) - (p.mean(0) ** 2).sum(1)) / 4
    torch.testing.assert_close(u, explicit, rtol=1e-5, atol=1e-8)
    assert not net.drop.training and not net.training  # modes restored
    # and it estimates the same quantity as T python-level passes (independent masks)
    net.drop.train()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(2)
        loop = torch.stack([net(x).softmax(1) for _ in range(2000)])
    net.drop.eval()
    big = mc_dropout_uncertainty(net, x, samples=2000, seed=3).detach()
    torch.testing.assert_close(big, loop.var(0, unbiased=False).mean(1), rtol=0.1, atol=1e-4)


def test_matched_noise_has_the_attacks_mean_l2():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, size=(50, 1, 8, 8)).astype(np.float32)
    x_adv = np.clip(x + 0.2 * np.sign(rng.normal(size=x.shape)), -0.5, 0.5).astype(np.float32)
    noisy, std = matched_gaussian_noise(x, x_adv, (-0.5, 0.5), seed=0)
    target = np.linalg.norm((x_adv - x).reshape(50, -1), axis=1).mean()
    assert np.linalg.norm((noisy - x).reshape(50, -1), axis=1).mean() == pytest.approx(target, rel=1e-3)
    assert std > 0 and noisy.min() >= -0.5 and noisy.max() <= 0.5


def test_combiner_fits_its_scaler_on_fit_rows_and_scores_like_sklearn():
    g = torch.Generator().manual_seed(0)
    neg, pos = torch.randn(80, 3, generator=g), torch.randn(60, 3, generator=g) + 1.5
    comb = LogisticCombiner(seed=0).fit(neg, pos)
    both = torch.cat([neg, pos]).double()
    torch.testing.assert_close(comb.mean_, both.mean(0))
    z = ((both - comb.mean_) / comb.std_)
    torch.testing.assert_close(comb.logit(both), z @ comb.coef_ + comb.intercept_)
    assert ra.detection_auc(-comb.logit(neg.double()).numpy(), -comb.logit(pos.double()).numpy()) > 0.8


def test_clear_errors(digits, ce_trainer):
    clf = ce_trainer.get_classifier()
    with pytest.raises(ValueError, match="no dropout layer"):
        ra.BayesianUncertaintyDetector(clf).fit(digits.x_train, digits.y_train)
    with pytest.raises(ValueError, match="pass x_adv"):
        ra.LIDDetector(clf).fit(digits.x_train, digits.y_train)
    with pytest.raises(ValueError, match="n_reference"):
        ra.LIDDetector(clf, k=20, n_reference=10)
    with pytest.raises(ValueError, match="no layers"):
        ra.MahalanobisDetector(clf, layers=["nope"])
    with pytest.raises(ValueError, match="together with x_clean"):
        ra.MahalanobisDetector(clf).fit(digits.x_train, digits.y_train, x_adv=digits.x_test[:10])
    with pytest.raises(ValueError, match="dropout"):
        ra.SmallCNN(dropout=1.0)


def test_mc_dropout_falls_back_to_repeating_the_input_around_a_skip_connection():
    class Skip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.drop, self.out = torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3)

        def forward(self, x):
            h = self.lin(x)
            return self.out(self.drop(h) + h)  # dropout output meets a tensor computed before it

    torch.manual_seed(0)
    net = ra.FeatureTap(Skip().eval())
    x = torch.randn(5, 4)
    u = mc_dropout_uncertainty(net, x, samples=40, seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net.model.drop.train()
        p = net(x.repeat(40, 1)).softmax(1).view(40, 5, 3)
        net.model.drop.eval()
    torch.testing.assert_close(u, p.var(0, unbiased=False).mean(1))
