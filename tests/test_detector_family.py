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
    # the same T masks, one python-level pass each, mask t on every input; Feinman's U over the number of classes
    probe = {}
    h = net.drop.register_forward_hook(lambda m, a, o: probe.update(shape=tuple(a[0].shape[1:])))
    net(x)
    h.remove()
    keep = _masks(net.drop, probe["shape"], 30, seed=1)
    passes = []
    for t in range(30):
        h = net.drop.register_forward_hook(lambda m, a, o, t=t: a[0] * keep[t] / 0.5)
        passes.append(net(x).softmax(1))
        h.remove()
    p = torch.stack(passes)
    explicit = ((p * p).sum(2).mean(0) - (p.mean(0) ** 2).sum(1)) / 4
    torch.testing.assert_close(u, explicit, rtol=1e-5, atol=1e-8)
    assert not net.drop.training and not net.training  # modes restored
    # and it estimates the same quantity as T python-level passes of torch's own dropout (independent masks)
    net.drop.train()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(2)
        loop = torch.stack([net(x).softmax(1) for _ in range(2000)])
    net.drop.eval()
    big = mc_dropout_uncertainty(net, x, samples=2000, seed=3).detach()
    torch.testing.assert_close(big, loop.var(0, unbiased=False).mean(1), rtol=0.1, atol=1e-4)


def test_mc_dropout_score_is_a_function_of_the_input_alone_and_draws_are_independent():
    """0.3 drew masks for the whole (T x N)-row batch: the same input scored differently in batches of 128, 64, 1."""
    torch.manual_seed(0)
    net = ra.SmallCNN(1, 10, dropout=0.5).eval()
    x = torch.rand(128, 1, 8, 8) - 0.5
    whole = mc_dropout_uncertainty(net, x, samples=20, seed=0)
    half = mc_dropout_uncertainty(net, x[64:], samples=20, seed=0)
    single = torch.cat([mc_dropout_uncertainty(net, x[i : i + 1], samples=20, seed=0) for i in (5, 70, 127)])
    torch.testing.assert_close(half, whole[64:], rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(single, whole[[5, 70, 127]], rtol=1e-5, atol=1e-9)
    other = mc_dropout_uncertainty(net, x, samples=20, seed=0, draw=1)
    assert (other - whole).abs().max() > 0.05 * whole.abs().max()  # another draw: other masks


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
    assert ra.evaluation.detection_auc(-comb.logit(neg.double()).numpy(), -comb.logit(pos.double()).numpy()) > 0.8


def test_clear_errors(digits, ce_trainer):
    clf = ce_trainer.get_classifier()
    with pytest.raises(ValueError, match="no dropout layer"):
        ra.BayesianUncertaintyDetector(clf).fit(digits.x_train, digits.y_train)
    with pytest.raises(ValueError, match="pass x_adv"):
        ra.LIDDetector(clf).fit(digits.x_train, digits.y_train)
    with pytest.raises(ValueError, match="n_reference"):
        ra.LIDDetector(clf, k=20, n_reference=10)
    with pytest.raises(ValueError, match="no layer named .nope.; its layers are"):
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
    keep = _masks(net.model.drop, (8,), 40, seed=0)
    passes = []
    for t in range(40):
        h = net.model.drop.register_forward_hook(lambda m, a, o, t=t: a[0] * keep[t] / 0.5)
        passes.append(net(x).softmax(1))
        h.remove()
    torch.testing.assert_close(u, torch.stack(passes).var(0, unbiased=False).mean(1))


def _masks(module, shape, samples, seed, draw=0, layer=0):
    """The keep-masks ``mc_dropout_uncertainty`` draws for one dropout layer."""
    from rce_art.detectors.uncertainty import dropout_masks

    state = np.random.SeedSequence([seed, draw]).generate_state(layer + 1, dtype=np.uint64)
    g = torch.Generator().manual_seed(int(state[layer]) & 0x7FFF_FFFF_FFFF_FFFF)
    return dropout_masks(module, shape, samples, g)


def test_lid_skips_the_query_itself_in_float32():
    """0.3 masked the self-distance only below 1e-12 x the maximum; float32 leaves ~5e-8: 25-70 of 100 points off."""
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(100, 64, generator=g) * 3 + 5
    got = lid_mle(ref.clone(), ref, k=20).double()
    d = torch.cdist(ref.double(), ref.double(), compute_mode="donot_use_mm_for_euclid_dist")
    r = d.masked_fill(d == 0, float("inf")).topk(20, largest=False).values  # float64, exact differences
    brute = -20 / torch.log(r / r[:, -1:]).sum(1)
    torch.testing.assert_close(got, brute, rtol=1e-4, atol=0)
    dup = torch.cat([ref, ref[:1].repeat(10, 1)])  # a query with 10 duplicates among the reference points
    torch.testing.assert_close(lid_mle(ref[:1], dup, k=20).double(), brute[:1], rtol=1e-4, atol=0)


def test_combiner_folds_are_shuffled_and_keep_every_copy_of_an_image_together(monkeypatch):
    """0.3's folds were unshuffled over stacked clean / noisy / adversarial rows: a fold's negatives were all
    clean or all noisy, and copies of one image fell in different folds."""
    import sklearn.linear_model

    seen = {}
    real = sklearn.linear_model.LogisticRegressionCV

    class Spy(real):
        def __init__(self, cv, **kw):
            seen["cv"] = cv
            super().__init__(cv=cv, **kw)

    monkeypatch.setattr(sklearn.linear_model, "LogisticRegressionCV", Spy)
    g = torch.Generator().manual_seed(0)
    n = 40
    clean, noisy, adv = (torch.randn(n, 2, generator=g) + s for s in (0.0, 0.2, 1.5))
    groups = np.concatenate([np.arange(n)] * 3)
    LogisticCombiner(seed=0).fit(torch.cat([clean, noisy]), adv, groups=groups)
    kinds = np.repeat([0, 1, 2], n)  # clean, noisy, adversarial
    for train, test in seen["cv"]:
        assert not set(groups[train]) & set(groups[test])  # an image and its copies: one fold
        assert {0, 1, 2} <= set(kinds[test])  # each fold holds clean, noisy and adversarial rows
    with pytest.raises(ValueError, match="one entry per row"):
        LogisticCombiner().fit(clean, adv, groups=np.arange(3))


def test_auto_noise_for_a_sparse_attack_flips_as_many_pixels():
    from rce_art.detectors.combiner import is_sparse_attack, matched_flip_noise

    rng = np.random.default_rng(0)
    x = rng.uniform(-0.4, 0.4, size=(30, 1, 8, 8)).astype(np.float32)
    jsma = x.copy().reshape(30, -1)
    jsma[:, :5] = 0.5  # five pixels per input, as an L0 attack changes them
    jsma = jsma.reshape(x.shape)
    assert is_sparse_attack(x, jsma) and not is_sparse_attack(x, np.clip(x + 0.1, -0.5, 0.5))
    noisy, k = matched_flip_noise(x, jsma, (-0.5, 0.5), seed=0)
    changed = (noisy != x).reshape(30, -1)
    assert k == 5 and (changed.sum(1) == 5).all() and np.isin(noisy[noisy != x], [-0.5, 0.5]).all()


def test_mahalanobis_preprocessing_in_one_batched_pass_matches_layer_by_layer(digits, ce_trainer):
    """Lee et al.'s input pre-processing, per layer: x_hat_i = clip(x + eps sign(grad_x M_i(x))), score M_i(x_hat_i).
    0.7 computes every layer's x_hat in one batched forward; the scores and their gradient are the per-layer loop's."""
    clf = ce_trainer.get_classifier()
    det = ra.MahalanobisDetector(clf, layers=["stem.2", "body.6", "features"], eps=0.01).fit(
        digits.x_train[:300], digits.y_train[:300], x_calibration=digits.x_test[:100],
        x_clean=digits.x_test[100:140], x_adv=np.clip(digits.x_test[100:140] + 0.05, -0.5, 0.5))
    x = torch.as_tensor(digits.x_test[150:170]).requires_grad_(True)
    logits, ch = det.characteristics(x)
    ref = []
    for i in range(3):  # the loop, written out
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(det._layer_scores(xg)[1][i].sum(), xg)
        ref.append(det._layer_scores((x + 0.01 * g.sign()).clamp(-0.5, 0.5))[1][i])
    ref = torch.stack(ref, 1).to(ch.dtype)
    torch.testing.assert_close(ch, ref, rtol=1e-5, atol=1e-5)
    (ga,) = torch.autograd.grad(ch.sum(), x, retain_graph=True)
    (gb,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # scoring under no_grad (the attacks' bookkeeping) still pre-processes
        torch.testing.assert_close(det.characteristics(x.detach())[1], ch.detach(), rtol=1e-5, atol=1e-5)


def test_lid_prepares_its_fixed_reference_once():
    from rce_art.detectors.lid import lid_mle, prepare_reference

    g = torch.Generator().manual_seed(0)
    q, r = torch.randn(30, 16, generator=g), torch.randn(100, 16, generator=g)
    torch.testing.assert_close(lid_mle(q, r, 20, prepare_reference(r)), lid_mle(q, r, 20), rtol=0, atol=0)
