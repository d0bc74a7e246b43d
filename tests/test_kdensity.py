import math

import numpy as np
import pytest
import torch
from art.defences.detector.evasion import EvasionDetector
from sklearn.neighbors import KernelDensity

import rce_art as ra
from rce_art.detectors.kernel import class_log_kdensity, log_kdensity, select_bandwidth


def brute_log_kd(z: np.ndarray, kernel: np.ndarray, sigma: float) -> np.ndarray:
    """float64 reference: log mean_i exp(-||z - z_i||^2 / sigma^2), pairwise differences, no expansion."""
    d2 = ((z[:, None, :].astype(np.float64) - kernel[None].astype(np.float64)) ** 2).sum(-1)
    a = -d2 / sigma**2
    m = a.max(1, keepdims=True)
    return (m[:, 0] + np.log(np.exp(a - m).sum(1))) - math.log(kernel.shape[0])


@pytest.fixture()
def feats():
    rng = np.random.default_rng(0)
    return rng.normal(size=(200, 64)).astype(np.float32), rng.normal(size=(30, 64)).astype(np.float32)


@pytest.mark.parametrize("sigma", [0.5, 2.0, 8.0])
def test_log_kdensity_matches_float64_brute_force(feats, sigma):
    kernel, z = feats
    ours = log_kdensity(torch.tensor(z), torch.tensor(kernel), sigma).double().numpy()
    ref = brute_log_kd(z, kernel, sigma)
    np.testing.assert_allclose(ours, ref, rtol=1e-4)


def test_log_kdensity_matches_sklearn_up_to_normaliser(feats):
    kernel, z = feats
    sigma = 8.0  # a bandwidth where scikit-learn's tree KDE agrees with brute force
    kde = KernelDensity(bandwidth=sigma / math.sqrt(2)).fit(kernel.astype(np.float64))
    sk = kde.score_samples(z.astype(np.float64))
    np.testing.assert_allclose(sk, brute_log_kd(z, kernel, sigma) - 32 * math.log(math.pi * sigma**2), rtol=1e-6)
    ours = log_kdensity(torch.tensor(z), torch.tensor(kernel), sigma).double().numpy()
    np.testing.assert_allclose(ours - 32 * math.log(math.pi * sigma**2), sk, rtol=1e-4)


@pytest.mark.parametrize("sigma", [1e-1, 1e-2, 1e-3])
def test_log_kdensity_finite_with_finite_gradients_at_small_sigma(feats, sigma):
    kernel, z = feats
    zt = torch.tensor(z, requires_grad=True)
    naive = torch.exp(-torch.cdist(zt, torch.tensor(kernel)) ** 2 / sigma**2).mean(1).log()
    assert torch.isinf(naive).all()  # the naive formula underflows here
    out = log_kdensity(zt, torch.tensor(kernel), sigma)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(zt.grad).all() and (zt.grad.abs().sum(1) > 0).all()


def test_log_kdensity_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    kernel = torch.randn(7, 5, generator=g, dtype=torch.float64)
    z = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: log_kdensity(q, kernel, 0.7), (z,))


def test_class_log_kdensity_uses_each_rows_class(feats):
    kernel, z = feats
    k0, k1 = torch.tensor(kernel[:100]), torch.tensor(kernel[100:] + 3.0)
    cls = torch.tensor([0, 1] * 15)
    out = class_log_kdensity(torch.tensor(z), cls, [k0, k1], 2.0)
    for i in range(len(z)):
        ref = brute_log_kd(z[i : i + 1], (k0 if cls[i] == 0 else k1).numpy(), 2.0)[0]
        assert out[i].item() == pytest.approx(ref, rel=1e-4)


def test_select_bandwidth_tracks_the_data_scale():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(300, 8, generator=g)
    s1, grid, scores = select_bandwidth([base[:150], base[150:]])
    s10, _, _ = select_bandwidth([10 * base[:150], 10 * base[150:]])
    assert grid.min() < s1 < grid.max()
    assert s10 == pytest.approx(10 * s1, rel=1e-6)
    assert torch.isfinite(scores).all()


def test_detector_is_art_evasion_detector_with_constructor_params(rce_detector):
    assert isinstance(rce_detector, EvasionDetector)
    params = rce_detector.get_params()
    assert set(params) == set(rce_detector.defence_params)
    import inspect

    ctor = set(inspect.signature(ra.KDensityDetector.__init__).parameters) - {"self"}
    assert ctor == set(rce_detector.defence_params)


def test_detector_report_and_fitted_attributes(digits, rce_detector):
    report, flagged = rce_detector.detect(digits.x_test[:50])
    assert set(report) == {"score", "log_density", "predicted_class", "threshold"}
    assert report["log_density"].shape == (50,) and flagged.shape == (50,) and flagged.dtype == bool
    np.testing.assert_array_equal(flagged, report["log_density"] < rce_detector.threshold_)
    counts = torch.bincount(rce_detector.labels_, minlength=10)
    assert (counts > 0).all() and rce_detector.features_.shape == (int(counts.sum()), 64)
    labels = rce_detector.predict_or_reject(digits.x_test[:50])
    np.testing.assert_array_equal(labels[flagged], -1)
    np.testing.assert_array_equal(labels[~flagged], report["predicted_class"][~flagged])


def test_calibrated_threshold_gives_target_fpr_on_held_out_clean_data(digits, rce_trainer):
    clf = rce_trainer.get_classifier()
    x_cal, x_eval = digits.x_test[:270], digits.x_test[270:]
    det = ra.KDensityDetector(clf, fpr=0.1, seed=0).fit(digits.x_train, digits.y_train, x_calibration=x_cal)
    cal_fpr = float(det.detect(x_cal)[1].mean())
    assert cal_fpr <= 0.1 and cal_fpr >= 0.1 - 1 / 270
    eval_fpr = float(det.detect(x_eval)[1].mean())
    # binomial sampling tolerance: 3 standard deviations for n = 270 at p = 0.1
    assert abs(eval_fpr - 0.1) < 3 * math.sqrt(0.1 * 0.9 / 270) + 1 / 270


def test_log_density_on_inputs_is_differentiable_and_matches_score(digits, rce_detector):
    x = torch.tensor(digits.x_test[:8], requires_grad=True)
    ld = rce_detector.log_density(x)
    np.testing.assert_allclose(ld.detach().numpy(), rce_detector.score(digits.x_test[:8]), rtol=1e-5, atol=1e-5)
    ld.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_save_load_round_trip_gives_identical_scores(tmp_path, digits, rce_trainer, rce_detector):
    path = tmp_path / "kd.safetensors"
    rce_detector.save(path)
    loaded = ra.KDensityDetector.load(path, rce_trainer.get_classifier())
    np.testing.assert_array_equal(loaded.score(digits.x_test), rce_detector.score(digits.x_test))
    assert loaded.threshold_ == rce_detector.threshold_ and loaded.bandwidth_ == rce_detector.bandwidth_
    params = [{k: v for k, v in d.get_params().items() if k != "classifier"} for d in (loaded, rce_detector)]
    assert params[0] == params[1]  # every parameter's value, not only the names


def test_load_never_unpickles(tmp_path, rce_trainer):
    bad = tmp_path / "x.safetensors"
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, str(bad))
    with pytest.raises(ValueError, match="not a file written by an rce-art detector"):
        ra.KDensityDetector.load(bad, rce_trainer.get_classifier())


def test_paper_and_numeric_bandwidths(digits, rce_trainer):
    clf = rce_trainer.get_classifier()
    det = ra.KDensityDetector(clf, bandwidth="paper-rce", n_per_class=20).fit(digits.x_train, digits.y_train)
    assert det.bandwidth_ == pytest.approx(math.sqrt(0.1 / 0.26))
    det = ra.KDensityDetector(clf, bandwidth=0.3, n_per_class=20).fit(digits.x_train, digits.y_train)
    assert det.bandwidth_ == 0.3
    assert torch.bincount(det.labels_).max() <= 20


def test_works_on_plain_user_module_via_feature_tap(tiny_model, tiny_data):
    x, y = tiny_data
    det = ra.KDensityDetector(tiny_model, bandwidth=1.0).fit(x, y)
    assert det.features_.shape[1] == 16  # input of the last nn.Linear
    assert det.score(x).shape == (60,)


def test_masked_and_per_class_paths_agree(feats, monkeypatch):
    import rce_art.detectors.kernel as K

    kernel, z = feats
    kernels = [torch.tensor(kernel[:70]), torch.tensor(kernel[70:150] + 1.0), torch.tensor(kernel[150:] - 1.0)]
    cls = torch.arange(len(z)) % 3
    masked = K.class_log_kdensity(torch.tensor(z), cls, K.KernelBank.from_kernels(kernels), 1.5)
    monkeypatch.setattr(K, "_MASKED_LIMIT", 0)
    looped = K.class_log_kdensity(torch.tensor(z), cls, K.KernelBank.from_kernels(kernels), 1.5)
    np.testing.assert_allclose(masked.numpy(), looped.numpy(), rtol=1e-5)
    ref = np.array([brute_log_kd(z[i : i + 1], kernels[int(cls[i])].numpy(), 1.5)[0] for i in range(len(z))])
    np.testing.assert_allclose(masked.double().numpy(), ref, rtol=1e-4)


def test_both_paths_exact_on_well_separated_clusters(monkeypatch):
    # clusters 300 units apart in float32: centring on one global mean loses the digits that matter
    import rce_art.detectors.kernel as K

    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-300.0] * 16, [0.0] * 16, [300.0] * 16])
    kernels = [c + torch.randn(50, 16, generator=g) for c in centres]
    cls = torch.arange(30) % 3
    z = centres[cls] + 1.5 * torch.randn(30, 16, generator=g)
    ref = np.array([brute_log_kd(z[i : i + 1].numpy(), kernels[int(cls[i])].numpy(), 0.8)[0] for i in range(30)])
    assert ref.min() < -40  # the regime where the global-centre expansion was measured off by 0.26 nats or more
    bank = K.KernelBank.from_kernels(kernels)
    masked = K.class_log_kdensity(z, cls, bank, 0.8).double().numpy()
    monkeypatch.setattr(K, "_MASKED_LIMIT", 0)
    looped = K.class_log_kdensity(z, cls, bank, 0.8).double().numpy()
    np.testing.assert_allclose(masked, ref, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(looped, ref, rtol=1e-5, atol=1e-3)


def test_loo_log_kdensity_leaves_each_point_out():
    from rce_art.detectors import loo_log_kdensity

    k = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    out = loo_log_kdensity(k, k, 1.0)
    # point 0: others at squared distances 1 and 4 -> log((e^-1 + e^-4) / 2)
    assert out[0].item() == pytest.approx(math.log((math.exp(-1) + math.exp(-4)) / 2))
