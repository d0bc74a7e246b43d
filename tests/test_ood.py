"""The pytorch-ood bridge (issue 32): pytorch-ood's detectors on rce-art's contract and in ``evaluate``.

The contract tests (tests/test_contracts.py) run the bridge with maximum softmax, energy, max logit, Mahalanobis, ViM
and KNN through every shared promise; here: what is particular to the bridge.
"""

import sys
import warnings

import numpy as np
import pytest
import torch

import rce_art as ra

pytest.importorskip("pytorch_ood")
from pytorch_ood.api import FeatureMapsDetector, FeaturesDetector  # noqa: E402
from pytorch_ood.detector import KNN, ViM, EnergyBased, Mahalanobis  # noqa: E402

from rce_art._tensors import eval_mode  # noqa: E402
from rce_art.adapters import OODDetector, build_ood_detector  # noqa: E402
from rce_art.adapters.ood_named import linear_head  # noqa: E402


@pytest.fixture(scope="module")
def user_clf(user_files):
    """The user's own net (not rce-art's SmallCNN) behind ART preprocessing (0.5, 0.5), inputs in [0, 1]."""
    from conftest import clf_of

    return clf_of(user_files[1])


def _features(net, x):
    """Logits and final features computed by hand: the ART preprocessing, then the user's net (no rce-art path)."""
    z = (torch.as_tensor(x) - 0.5) / 0.5
    feats = {}
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    h = last.register_forward_hook(lambda m, a, o: feats.update(z=a[0]))  # returns None: the output is kept
    try:
        with torch.no_grad(), eval_mode(net):
            logits = net(z)
    finally:
        h.remove()
    return logits, feats["z"].flatten(1)


@pytest.mark.parametrize("alias", ["mahalanobis", "vim", "knn", "energy"])
def test_scores_are_pytorch_ood_scores_negated_through_the_preprocessing(alias, user_clf, user_files, digits):
    """On a user's model with ART preprocessing: the score is minus what pytorch-ood computes on the features of the
    preprocessed input, and the torch forms carry a gradient pytorch-ood's own computation does not."""
    x_fit = (digits.x_train + 0.5).astype(np.float32)
    det = build_ood_detector(f"ood:{alias}", user_clf, x_fit).fit(x_fit, digits.y_train,
                                                                   x_calibration=(digits.x_test[:100] + 0.5).astype(np.float32))
    x = (digits.x_test[:64] + 0.5).astype(np.float32)
    logits, feats = _features(user_files[1], x)
    ood = det.detector
    theirs = ood.predict_logits(logits.double()) if alias == "energy" else ood.predict_features(feats)
    np.testing.assert_allclose(det.score(x), -theirs.double().numpy(), rtol=1e-4, atol=1e-5)
    assert det.score_gradient_ == ("pytorch-ood" if alias == "energy" else "torch form")
    xg = torch.tensor(x[:4], requires_grad=True)
    det.score_tensor(xg).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_vim_reads_the_last_layer_of_an_rce_network_through_its_reversed_logits(rce_trainer, digits):
    clf = rce_trainer.get_classifier()  # ReverseLogits: the network's logits negated
    w, b = linear_head(clf, digits.x_train[:500])
    det = build_ood_detector("ood:vim", clf, digits.x_train).fit(digits.x_train, digits.y_train,
                                                                  x_calibration=digits.x_test[:200])
    logits, feats = det.extract(digits.x_test[:50])
    np.testing.assert_allclose((feats @ w.T + b).numpy(), logits.numpy(), atol=1e-3)
    assert det.score_gradient_ == "torch form" and 0.0 <= det.detect(digits.x_test[200:])[1].mean() <= 0.2


class _SquashedHead(torch.nn.Module):
    """A model whose logits are not a linear function of the features it reports."""

    def __init__(self):
        super().__init__()
        self.body, self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16)), torch.nn.Linear(16, 10)

    def logits_and_features(self, x):
        z = self.body(x)
        return torch.tanh(self.head(z)) * 3, z

    def forward(self, x):
        return self.logits_and_features(x)[0]


def test_a_linear_head_is_required_for_vim():
    torch.manual_seed(0)
    clf = ra.make_art_classifier(_SquashedHead(), (1, 8, 8), 10, (-0.5, 0.5))
    with pytest.raises(ValueError, match="not a linear function"):
        linear_head(clf, np.random.default_rng(0).uniform(-0.5, 0.5, (100, 1, 8, 8)).astype(np.float32))


class _NoGradFeatures(FeaturesDetector):
    """A user's own pytorch-ood detector whose score carries no gradient (distance to the mean, under no_grad)."""

    requires_fit = True

    def __init__(self, encoder):
        super().__init__()
        self.encoder, self.mean = encoder, None

    def fit_features(self, x, y):
        self.mean = x.mean(0)
        return self

    @torch.no_grad()
    def predict_features(self, x):
        return (x - self.mean).norm(dim=1)

    def predict(self, x):
        return self.predict_features(self.encoder(x))


def test_a_score_without_gradient_is_said_and_attacks_still_run(ce_trainer, digits):
    clf = ce_trainer.get_classifier()
    with pytest.warns(ra.GradientMaskingWarning, match="without gradient"):
        det = OODDetector(clf, _NoGradFeatures(None)).fit(digits.x_train, digits.y_train,
                                                          x_calibration=digits.x_test[:200])
    assert det.score_gradient_ == "none"
    xg = torch.tensor(digits.x_test[:4], requires_grad=True)
    det.score_tensor(xg).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() == 0  # zero, stated; not a crash
    x, y = torch.as_tensor(digits.x_test[300:308]), torch.as_tensor(digits.y_test[300:308])
    r = ra.DetectorPGD(0.1, mode="selective", steps=2).run(det, x, y)
    assert torch.isfinite(r.score).all()
    with pytest.raises(ValueError, match="not a class of pytorch_ood.detector"):
        det.save("unused.safetensors")


def test_a_detector_fitted_by_the_user_is_used_as_is_and_not_pickled(ce_trainer, digits, tmp_path):
    clf = ce_trainer.get_classifier()
    ours = build_ood_detector("ood:mahalanobis", clf, digits.x_train).fit(digits.x_train, digits.y_train,
                                                                          x_calibration=digits.x_test[:200])
    prefitted = Mahalanobis(None).fit_features(ours.fit_inputs_, ours.fit_labels_)
    theirs = OODDetector(clf, prefitted, refit=False).fit(digits.x_train[:50], digits.y_train[:50],
                                                          x_calibration=digits.x_test[:200])
    assert prefitted.mu is not None and theirs.detector is prefitted
    np.testing.assert_allclose(theirs.score(digits.x_test), ours.score(digits.x_test), rtol=1e-6)
    with pytest.raises(ValueError, match="fitted outside rce-art"):
        theirs.save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_knn_file_rebuilds_the_same_scores(ce_trainer, digits, tmp_path):
    clf = ce_trainer.get_classifier()
    det = OODDetector(clf, KNN(None, k=5, normalize=False)).fit(digits.x_train, digits.y_train,
                                                                 x_calibration=digits.x_test[:200])
    det.save(tmp_path / "k.safetensors")
    loaded = ra.load_detector(tmp_path / "k.safetensors", clf)
    assert isinstance(loaded.detector, KNN) and loaded.detector.k == 5 and loaded.detector.normalize is False
    np.testing.assert_array_equal(loaded.score(digits.x_test), det.score(digits.x_test))
    assert "KNN(k=5, normalize=False)" in repr(loaded)


def test_bad_arguments_are_clear(ce_trainer):
    clf = ce_trainer.get_classifier()

    class Maps(FeatureMapsDetector):
        def predict(self, x):
            return x

    with pytest.raises(TypeError, match="logits .* or features"):
        OODDetector(clf, Maps())
    with pytest.raises(TypeError, match="logits .* or features"):
        OODDetector(clf, "energy")
    with pytest.raises(ValueError, match="unknown pytorch-ood detector"):
        build_ood_detector("ood:nonsense", clf, np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(TypeError, match="refit"):
        OODDetector(clf, EnergyBased(None), refit="yes")
    with pytest.raises(ValueError, match="needs more than its model"):
        build_ood_detector("ood:WeightedEBO", clf, np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(TypeError, match="logits .* or features"):
        build_ood_detector("ood:ODIN", clf, np.zeros((1, 1, 8, 8), np.float32))
    assert ViM is not None


def test_missing_extra_names_it(ce_trainer, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_ood.detector", None)
    with pytest.raises(ImportError, match=r"rce-art\[ood\]"):
        OODDetector(ce_trainer.get_classifier(), object())


def test_evaluate_takes_ood_names(user_files, digits, tmp_path):
    from conftest import clf_of, user_data

    from rce_art.report import evaluate

    x, y, x_cal, x_fit, y_fit = user_data(digits)
    fast = {"attacks": ["apgd-ce"], "budget": "quick", "batch_size": 12, "verbose": False, "curve_fprs": (),
            "diagnostics": False}
    with pytest.raises(ValueError, match="unknown pytorch-ood detector"):
        evaluate(clf_of(user_files[1]), ["ood:nonsense"], x, y, x_calibration=x_cal, x_fit=x_fit, y_fit=y_fit,
                 out=tmp_path / "bad", **fast)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = evaluate(clf_of(user_files[1]), ["ood:energy", "ood:knn"], x, y, x_calibration=x_cal, x_fit=x_fit,
                          y_fit=y_fit, eps=0.2, out=tmp_path / "run", **fast)
    assert [r["detector"] for r in report.rows] == ["ood-energy", "ood-knn"]
    assert report.settings["detectors"]["ood-knn"]["score_gradient"] == "torch form"
    assert "pytorch-ood" in report.settings["identity"]["versions"] if "identity" in report.settings else True
    w = report.records["ood-knn"]["worst@0.05"]
    assert np.array_equal(w["broken"], (np.array(w["pred"]) != y) & ~np.array(w["flagged"]))
    assert list((tmp_path / "run" / "detectors").glob("ood-knn-*.safetensors"))
