"""Paths a user takes with their own model and pipeline: each gives the right answer or a clear error."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import rce_art as ra


def test_every_detector_refuses_a_raw_rce_network(digits, rce_trainer):
    """0.3 refused it in KD, KD+BU, confidence and non-ME only; BU, LID and Mahalanobis scored nonsense."""
    raw = rce_trainer.get_model().model  # the network before ReverseLogits: a reverse classifier
    clf = ra.make_art_classifier(raw, digits.input_shape, 10, digits.clip_values)
    x_fit = digits.x_test[:40]
    for det, kw in ((ra.LIDDetector(clf, k=10, n_reference=50), {"x_clean": x_fit, "x_adv": x_fit + 0.0}),
                    (ra.MahalanobisDetector(clf), {})):
        with pytest.raises(ValueError, match="ReverseLogits"):
            det.fit(digits.x_train, digits.y_train, x_calibration=digits.x_test[:100], **kw)


def test_mahalanobis_with_several_layers_needs_its_combiner(digits, ce_trainer):
    """0.3 scored the last layer only, silently."""
    det = ra.MahalanobisDetector(ce_trainer.get_classifier(), layers=["stem.2", "features"])
    with pytest.raises(ValueError, match="logistic regression: pass x_adv"):
        det.fit(digits.x_train, digits.y_train, x_calibration=digits.x_test[:100])


def test_art_classifier_follows_arts_default_device(digits):
    """0.3 defaulted to device_type='cpu' (ART's default is the GPU when there is one)."""
    import inspect

    from art.estimators.classification import PyTorchClassifier

    art_default = inspect.signature(PyTorchClassifier.__init__).parameters["device_type"].default
    assert inspect.signature(ra.make_art_classifier).parameters["device_type"].default == art_default
    clf = ra.make_art_classifier(ra.SmallCNN(1, 10), digits.input_shape, 10, digits.clip_values)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert clf.device.type == expected
    det = ra.ConfidenceDetector(clf)
    assert det.device == clf.device  # read from the classifier, never assumed


def test_fit_loader_checks_batches_as_fit_checks_arrays(digits):
    """0.3 trained on doubly normalised inputs (a normalising loader + ART preprocessing) without a word."""
    clf = ra.make_art_classifier(ra.SmallCNN(1, 10), digits.input_shape, 10, digits.clip_values,
                                 preprocessing=(0.0, 0.3))
    x, y = torch.as_tensor(digits.x_train[:128]), torch.as_tensor(digits.y_train[:128])
    normalised = DataLoader(TensorDataset(x / 0.3, y), batch_size=32)
    trainer = ra.CETrainer(clf, epochs=1, verbose=False)
    with pytest.raises(ValueError, match="doubly normalised"):
        trainer.fit_loader(normalised)
    with pytest.raises(TypeError, match="wrap a Dataset"):
        trainer.fit_loader(TensorDataset(x, y))
    dicts = DataLoader([{"image": xi, "label": yi} for xi, yi in zip(x, y)], batch_size=32)
    with pytest.raises(TypeError, match="dict batches"):
        trainer.fit_loader(dicts)
    trainer.fit_loader(DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True))  # raw pixels: trains
    assert np.isfinite(trainer.history_.loss).all()


class UserNet(torch.nn.Module):
    """A user's model: no BatchNorm, and an auxiliary head registered after the classifier head."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                        torch.nn.Linear(16 * 64, 64), torch.nn.ReLU())
        self.head = torch.nn.Linear(64, 10)
        self.aux = torch.nn.Linear(64, 2)  # registered last, never called by forward

    def forward(self, x):
        return self.head(self.body(x))


@pytest.fixture(scope="module")
def user_clf():
    """Unit-range digits, ART preprocessing (mean, std), trained with the user's own Adam loop."""
    data = ra.load_dataset("digits", pixel_range="unit")
    torch.manual_seed(0)
    net = UserNet()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    mean, std = 0.3, 0.4
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        for idx in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net((x[idx] - mean) / std), y[idx]).backward()
            opt.step()
    net.eval()
    clf = ra.make_art_classifier(net, data.input_shape, 10, data.clip_values, preprocessing=(mean, std))
    return clf, data


def _art_pgd_accuracy(clf, x, y):
    from art.attacks.evasion import ProjectedGradientDescent

    x_adv = ProjectedGradientDescent(clf, eps=0.1, eps_step=0.02, max_iter=10, num_random_init=0,
                                     verbose=False).generate(x)
    return float((clf.predict(x_adv).argmax(1) == y).mean())


def test_toolkit_adapters_apply_the_art_classifiers_preprocessing_foolbox(user_clf):
    """0.3's adapters, called as the docs showed (on classifier.model), attacked the network on unnormalised
    inputs: robust accuracy 0.765 (Foolbox) vs 0.290 with ART's PGD."""
    fb = pytest.importorskip("foolbox")
    from rce_art.adapters import FoolboxAttack

    clf, data = user_clf
    x, y = data.x_test[:200], data.y_test[:200]
    x_adv = FoolboxAttack(fb.attacks.LinfPGD(steps=10, abs_stepsize=0.02, random_start=False), clf,
                          epsilon=0.1).generate(x)
    foolbox = float((clf.predict(x_adv).argmax(1) == y).mean())
    art = _art_pgd_accuracy(clf, x, y)
    assert abs(foolbox - art) <= 0.05, (foolbox, art)


def test_toolkit_adapters_apply_the_art_classifiers_preprocessing_torchattacks(user_clf):
    """0.3: robust accuracy 0.560 (torchattacks on classifier.model) vs 0.290 with ART's PGD."""
    ta = pytest.importorskip("torchattacks")
    from rce_art.adapters import TorchattacksAttack

    clf, data = user_clf
    x, y = data.x_test[:200], data.y_test[:200]
    x_adv = TorchattacksAttack(ta.PGD(clf.model, eps=0.1, alpha=0.02, steps=10, random_start=False),
                               classifier=clf).generate(x)
    torchattacks = float((clf.predict(x_adv).argmax(1) == y).mean())
    art = _art_pgd_accuracy(clf, x, y)
    assert abs(torchattacks - art) <= 0.05, (torchattacks, art)
    with pytest.raises(ValueError, match="built on classifier.model"):
        TorchattacksAttack(ta.PGD(UserNet()), classifier=clf)


def test_feature_layer_is_the_linear_that_produces_the_logits(user_clf):
    """0.3 tapped the last *registered* nn.Linear: an auxiliary head registered after the classifier's was read."""
    from rce_art.models import FeatureTap

    clf, data = user_clf
    det = ra.KDensityDetector(clf, n_per_class=50).fit(data.x_train, data.y_train, x_calibration=data.x_test[:100])
    assert det.provenance_["feature_layer"] == "head"  # not "aux", registered last
    feats = det.extract(data.x_test[:5])[1]
    x = (torch.as_tensor(data.x_test[:5]) - 0.3) / 0.4
    torch.testing.assert_close(feats, clf.model.body(x))

    class FunctionalHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(64, 32)
            self.w = torch.nn.Parameter(torch.randn(10, 32))

        def forward(self, x):
            return torch.nn.functional.linear(torch.relu(self.hidden(x.flatten(1))), self.w)

    with pytest.raises(ValueError, match="F.linear.*layer="):
        FeatureTap(FunctionalHead()).logits_and_features(torch.randn(2, 1, 8, 8))
    tap = FeatureTap(FunctionalHead(), layer="hidden")  # named: the user's choice is respected
    assert tap.logits_and_features(torch.randn(2, 1, 8, 8))[1].shape == (2, 64)


def test_detector_files_carry_the_models_fingerprint_and_refuse_foreign_files(digits, ce_trainer, tmp_path):
    """0.3 loaded a K-density file onto a raw RCE network (73% of clean inputs flagged) or an untrained model (100%),
    and gave a raw SafetensorError on a file that is not a detector file."""
    clf = ce_trainer.get_classifier()
    det = ra.KDensityDetector(clf, n_per_class=40).fit(digits.x_train, digits.y_train, x_calibration=digits.x_test[:100])
    path = tmp_path / "kd.safetensors"
    det.save(path)
    loaded = ra.load_detector(path, clf)  # the class is read from the file
    assert type(loaded) is ra.KDensityDetector and loaded.threshold_ == det.threshold_
    untrained = ra.make_art_classifier(ra.SmallCNN(1, 10), digits.input_shape, 10, digits.clip_values)
    with pytest.raises(ValueError, match="other weights"):
        ra.KDensityDetector.load(path, untrained)
    with pytest.warns(UserWarning, match="other weights"):
        ra.load_detector(path, untrained, strict=False)
    other = ra.make_art_classifier(UserNet(), digits.input_shape, 10, digits.clip_values)
    with pytest.raises(ValueError, match="another architecture"):
        ra.load_detector(path, other)
    torch.save({"w": torch.zeros(2)}, tmp_path / "checkpoint.pt")
    for bad in (tmp_path / "checkpoint.pt",):
        with pytest.raises(ValueError, match=r"checkpoint.pt is not an rce-art detector file"):
            ra.load_detector(bad, clf)


def test_rce_on_a_network_without_batchnorm_warns(digits):
    """RCE stalls without BatchNorm (loss 2.297 -> 2.254 in 8 epochs, accuracy 0.76 vs CE 0.86), silently in 0.3."""
    with pytest.warns(UserWarning, match="no BatchNorm"):
        ra.RCETrainer(ra.make_art_classifier(UserNet(), digits.input_shape, 10, digits.clip_values), epochs=1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ra.RCETrainer(ra.make_art_classifier(ra.SmallCNN(1, 10), digits.input_shape, 10, digits.clip_values), epochs=1)


def test_layers_are_named_as_in_the_users_own_module(user_clf):
    """0.3: KDensityDetector(layer="fc1") worked but MahalanobisDetector wanted "model.fc1" (the wrapper's name)."""
    clf, data = user_clf
    maha = ra.MahalanobisDetector(clf, layers=["body.1"])  # the user's name; the wrapper holds it as model.body.1
    maha.fit(data.x_train, data.y_train, x_calibration=data.x_test[:100])
    kd = ra.KDensityDetector(clf, layer="head", n_per_class=40).fit(data.x_train, data.y_train,
                                                                     x_calibration=data.x_test[:100])
    assert kd.provenance_["feature_layer"] == "head"
    with pytest.raises(ValueError, match="no layer named 'nope'; its layers are .*'body.1'"):
        ra.MahalanobisDetector(clf, layers=["nope"])


def test_cw_wb_refuses_a_detector_it_cannot_attack_and_names_what_can(digits, ce_trainer):
    """0.3 failed with AttributeError: ... no attribute 'kernels'."""
    det = ra.NonMEDetector(ce_trainer.get_classifier()).fit(digits.x_train[:100], x_calibration=digits.x_test[:100])
    x, y = torch.as_tensor(digits.x_test[:2]), torch.as_tensor(digits.y_test[:2])
    with pytest.raises(TypeError, match="K-density detectors.*DetectorPGD"):
        ra.CarliniWagnerWB(max_iter=2).run(det, x, y)
    with pytest.raises(TypeError, match="K-density detectors.*DetectorPGD"):
        ra.CarliniWagnerWBART(ce_trainer.get_classifier(), det, verbose=False)


def test_detectors_attacks_and_evaluation_take_dataloaders_and_datasets(digits, ce_trainer):
    """0.3 took arrays only (a DataLoader reached check_inputs and failed there)."""
    clf = ce_trainer.get_classifier()
    train = TensorDataset(torch.as_tensor(digits.x_train), torch.as_tensor(digits.y_train))
    cal = DataLoader(TensorDataset(torch.as_tensor(digits.x_test[:100]), torch.as_tensor(digits.y_test[:100])),
                     batch_size=32)
    det = ra.KDensityDetector(clf, n_per_class=40).fit(DataLoader(train, batch_size=100), x_calibration=cal)
    ref = ra.KDensityDetector(clf, n_per_class=40).fit(digits.x_train, digits.y_train,
                                                        x_calibration=digits.x_test[:100])
    assert det.threshold_ == ref.threshold_
    test = TensorDataset(torch.as_tensor(digits.x_test[100:130]), torch.as_tensor(digits.y_test[100:130]))
    np.testing.assert_array_equal(det.score(test), ref.score(digits.x_test[100:130]))
    r = ra.DetectorPGD(0.1, steps=2).generate(det, DataLoader(test, batch_size=16))
    assert r.x_adv.shape == (30, 1, 8, 8)
    rec = ra.evaluation.evaluate_attack(det, DataLoader(test, batch_size=8), r.x_adv.numpy(), None, digits.clip_values)
    assert rec["n"] == 30
    with pytest.raises(ValueError, match="needs labels"):
        ra.KDensityDetector(clf).fit(digits.x_train)


def test_trainers_take_an_optimizer_and_record_a_validation_accuracy(digits):
    """0.3 hard-coded SGD and recorded no validation metric."""
    import functools

    torch.manual_seed(0)
    clf = ra.make_art_classifier(ra.SmallCNN(1, 10), digits.input_shape, 10, digits.clip_values)
    trainer = ra.RCETrainer(clf, epochs=2, batch_size=64, verbose=False, schedule="cosine",
                            optimizer=functools.partial(torch.optim.Adam, lr=3e-3),
                            validation=(digits.x_test, digits.y_test)).fit(digits.x_train[:512], digits.y_train[:512])
    final = float((trainer.get_classifier().predict(digits.x_test).argmax(1) == digits.y_test).mean())
    assert len(trainer.history_.val_accuracy) == 2 and trainer.history_.val_accuracy[-1] == final  # ordinary labels
    net = ra.SmallCNN(1, 10)
    own = torch.optim.Adam(net.parameters(), lr=1e-3)  # the user's classifier carries its own optimizer
    user = ra.make_art_classifier(net, digits.input_shape, 10, digits.clip_values, optimizer=own)
    before = [p.detach().clone() for p in net.parameters()]
    ra.CETrainer(user, epochs=1, verbose=False, optimizer="classifier").fit(digits.x_train[:128], digits.y_train[:128])
    assert own.state and any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    with pytest.raises(ValueError, match="built with an optimizer"):
        ra.CETrainer(clf, optimizer="classifier")
