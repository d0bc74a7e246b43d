"""The shared promises, checked for every detector, trainer and attack that rce_art exports.

A new component joins by being exported from ``rce_art``: ``test_every_export_is_covered`` fails until
it has a factory below.
"""

import importlib.util
import inspect
import warnings

import numpy as np
import pytest
import torch

import rce_art as ra
from rce_art.detectors import ScoreDetector
from rce_art.training import TorchTrainer


def _public(name):
    """``rce_art.<name>``, or ``None`` for a lazily imported form whose optional toolkit is not installed."""
    try:
        return getattr(ra, name, None)
    except ImportError:
        return None


def _exported(base):
    classes = {n: _public(n) for n in ra.__all__ if inspect.isclass(_public(n))}
    return {n: c for n, c in classes.items() if issubclass(c, base)}


# ------------------------------------------------------------------------------------------- detectors
#: name -> (factory on a classifier, whether fit needs adversarial examples for a combiner)
DETECTORS = {
    "KDensityDetector": (lambda clf: ra.KDensityDetector(clf, n_per_class=40, seed=0), False),
    "BayesianUncertaintyDetector": (lambda clf: ra.BayesianUncertaintyDetector(clf, mc_samples=10), False),
    "KDBUDetector": (lambda clf: ra.KDBUDetector(clf, n_per_class=40, mc_samples=10), True),
    "LIDDetector": (lambda clf: ra.LIDDetector(clf, k=10, n_reference=50), True),
    "MahalanobisDetector": (lambda clf: ra.MahalanobisDetector(clf, layers=["stem.2", "features"], eps=0.002), True),
    "ConfidenceDetector": (lambda clf: ra.ConfidenceDetector(clf), False),
    "NonMEDetector": (lambda clf: ra.NonMEDetector(clf), False),
    "ERDetector": (lambda clf: ra.ERDetector(clf, code="combined", n_per_class=40, seed=0), False),
}


def _ood(alias):
    """The pytorch-ood bridge on one of pytorch-ood's detectors (built as ``evaluate`` builds ``"ood:<alias>"``)."""
    def make(clf):
        from rce_art.adapters import build_ood_detector

        return build_ood_detector(f"ood:{alias}", clf, ra.load_dataset("digits").x_train)
    return make


if importlib.util.find_spec("pytorch_ood") is not None:  # the extra `rce-art[ood]` (installed by .ci/run)
    DETECTORS["OODDetector"] = (_ood("energy"), False)
    DETECTORS.update({f"OODDetector:{a}": (_ood(a), False) for a in ("msp", "maxlogit", "mahalanobis", "vim", "knn")})
#: detectors that read a particular kind of model: name -> fixture giving their classifier
NEEDS_MODEL = {"ERDetector": "er_clf"}


@pytest.fixture(scope="module")
def clf(dropout_clf):
    """A small CNN with dropout (needed by the MC-dropout detectors), trained briefly (the session's)."""
    return dropout_clf


@pytest.fixture(scope="module")
def er_clf(digits):
    """An ER-Classifier (encoder + code + head), trained briefly without the critic."""
    torch.manual_seed(0)
    raw = ra.make_art_classifier(ra.ERClassifier.small(1, 10, k=8, width=16), digits.input_shape, 10,
                                 digits.clip_values)
    return ra.ERTrainer(raw, regularizer=None, adversarial=None, epochs=6, batch_size=64,
                        verbose=False).fit(digits.x_train, digits.y_train).classifier


@pytest.fixture(scope="module")
def adversarial(digits, clf):
    from art.attacks.evasion import FastGradientMethod

    x = digits.x_test[200:300]
    return x, FastGradientMethod(clf, eps=0.2).generate(x)


def _fit(name, clf, digits, adversarial, request=None):
    make, combiner = DETECTORS[name]
    if name in NEEDS_MODEL:
        clf = request.getfixturevalue(NEEDS_MODEL[name])
    kw = {"x_clean": adversarial[0], "x_adv": adversarial[1], "attack": "fgsm"} if combiner else {}
    return make(clf).fit(digits.x_train, digits.y_train, x_calibration=digits.x_test[:200], **kw)


@pytest.fixture(scope="module", params=sorted(DETECTORS))
def fitted(request, digits, clf, adversarial):
    return _fit(request.param, clf, digits, adversarial, request)


def test_every_export_is_covered():
    assert set(_exported(ScoreDetector)) - {"ScoreDetector"} <= set(DETECTORS)
    assert set(_exported(TorchTrainer)) - {"TorchTrainer"} <= set(TRAINERS)
    assert set(_exported_attacks()) <= set(ATTACKS) and len(_exported_attacks()) >= 6


def _exported_attacks():
    """rce-art's own attacks exported at the top level, found by their base classes (not by name)."""
    from art.attacks import EvasionAttack

    from rce_art._signature import SignatureParams

    bases: tuple[type, ...] = (SignatureParams, EvasionAttack)
    try:
        from rce_art.attacks._torchattacks_form import DetectorAttackForm

        bases += (DetectorAttackForm,)
    except ImportError:  # the optional extra: its forms are not exported without it
        pass
    return {n: c for n, c in ((n, _public(n)) for n in ra.__all__) if inspect.isclass(c) and issubclass(c, bases)}


def test_detector_bad_inputs_give_clear_errors(fitted, digits):
    x = digits.x_test[:4].copy()
    for bad, exc, match in ((np.zeros((0, 1, 8, 8), np.float32), ValueError, "empty batch"),
                            (x.astype(np.int64), TypeError, "floating dtype"),
                            (x[:, 0], ValueError, "per-example shape"),
                            (np.full_like(x, 3.0), ValueError, "outside clip_values"),
                            (np.where(x > 0, np.nan, x), ValueError, "NaN or infinite")):
        with pytest.raises(exc, match=match):
            fitted.detect(bad)
    with pytest.raises(TypeError, match="unexpected keyword"):
        fitted.detect(x, foo=1)
    with pytest.raises(ra.NotFittedError):
        type(fitted)(**fitted.get_params()).detect(x)


def _params(det):
    """The parameters but the classifier; a wrapped pytorch-ood detector by its class and constructor parameters."""
    from rce_art.adapters.ood_detectors import describe

    return {k: describe(v) if k == "detector" else v for k, v in det.get_params().items() if k != "classifier"}


def test_detector_save_load_is_bit_exact(fitted, digits, tmp_path):
    fitted.save(tmp_path / "d.safetensors")
    loaded = type(fitted).load(tmp_path / "d.safetensors", fitted.classifier)
    assert type(ra.load_detector(tmp_path / "d.safetensors", fitted.classifier)) is type(fitted)  # class from the file
    np.testing.assert_array_equal(loaded.score(digits.x_test), fitted.score(digits.x_test))
    assert loaded.threshold_ == fitted.threshold_
    assert _params(loaded) == _params(fitted)  # every parameter's value, not only the names
    assert loaded.provenance_ == fitted.provenance_ and loaded.provenance_["n_calibration"] == 200
    report, flagged = loaded.detect(digits.x_test[:50])
    np.testing.assert_array_equal(flagged, fitted.detect(digits.x_test[:50])[1])
    assert set(report) == {"score", type(fitted).report_key, "predicted_class", "threshold"}
    np.testing.assert_array_equal(report["score"], report[type(fitted).report_key])  # one key for every detector


def test_detector_set_params_keeps_it_coherent(digits, clf, ce_trainer, adversarial, tmp_path, request):
    for name in DETECTORS:
        det = _fit(name, clf, digits, adversarial, request)
        t5 = det.threshold_
        det.set_params(fpr=0.2)  # recalibrated from the stored clean scores
        assert det.threshold_ > t5 and abs(det.detect(digits.x_test[:200])[1].mean() - 0.2) <= 1 / 200
        det.save(tmp_path / "a.safetensors")
        assert type(det).load(tmp_path / "a.safetensors", det.classifier).fpr == 0.2
        with pytest.raises(ValueError, match="fpr"):
            det.set_params(fpr=2.0)
        assert det.fpr == 0.2  # nothing changed by a rejected value
        with pytest.raises(ValueError, match="unknown parameters"):
            det.set_params(nonsense=1)
        net = ra.ERClassifier.small(1, 10, k=8, width=16) if name in NEEDS_MODEL else ce_trainer.get_model()
        other = ra.make_art_classifier(net, digits.input_shape, 10, digits.clip_values)
        with pytest.warns(UserWarning, match="call fit again"):
            det.set_params(classifier=other)  # the model view is rebuilt and the old fit discarded
        assert det.view.estimator is other and not det.is_fitted
        with pytest.raises(ra.NotFittedError):
            det.save(tmp_path / "b.safetensors")


def test_detector_restores_model_mode_and_has_finite_gradients(fitted, digits):
    model = fitted.model
    model.train()
    try:
        fitted.score(digits.x_test[:8])
        assert all(m.training for m in model.modules())
    finally:
        model.eval()
    x = torch.tensor(digits.x_test[:8], requires_grad=True)
    fitted.score_tensor(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# -------------------------------------------------------------------------------------------- trainers
TRAINERS = {
    "CETrainer": lambda clf: ra.CETrainer(clf, epochs=3, batch_size=32, verbose=False),
    "RCETrainer": lambda clf: ra.RCETrainer(clf, epochs=3, batch_size=32, verbose=False),
    "PDMTrainer": lambda clf: ra.PDMTrainer(clf, epochs=3, batch_size=32, verbose=False),
    "ObjectiveTrainer": lambda clf: ra.ObjectiveTrainer(
        clf, ra.losses.ComposedObjective(rce_smoothing=0.4, logit_squeezing=0.1, output_variance=1.0), epochs=3,
        batch_size=32, verbose=False, schedule="cosine", weight_decay=5e-4, augment="crop", crop_padding=1),
    "ERTrainer": lambda clf: ra.ERTrainer(clf, critic_hidden=32, pgd_eps=0.05, pgd_alpha=0.02, pgd_steps=2, epochs=3,
                                          batch_size=32, verbose=False),
}
TRAINER_MODELS = {"ERTrainer": lambda: ra.ERClassifier.small(1, 10, k=16, width=16)}


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_trainer_contract(name, digits):
    from art.defences.trainer import Trainer
    from art.estimators.classification import PyTorchClassifier

    torch.manual_seed(0)
    net = TRAINER_MODELS.get(name, lambda: ra.SmallCNN(1, 10))()
    clf = ra.make_art_classifier(net, digits.input_shape, 10, digits.clip_values)
    trainer = TRAINERS[name](clf)
    assert isinstance(trainer, Trainer)
    with pytest.raises(ValueError, match="outside clip_values"):
        trainer.fit(np.full((4, 1, 8, 8), 2.0, np.float32), np.arange(4))
    with pytest.raises(ValueError, match="labels outside"):
        trainer.fit(digits.x_train[:8], np.full(8, 12))
    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    trainer.fit(digits.x_train[:512], digits.y_train[:512])
    assert torch.equal(torch.rand(3), before)  # global RNG untouched
    out = trainer.get_classifier()
    assert isinstance(out, PyTorchClassifier) and trainer.classifier is out
    acc = (out.predict(digits.x_test).argmax(1) == digits.y_test).mean()
    assert acc > 0.3  # ordinary predictions (a reversed classifier would be far below chance)


# --------------------------------------------------------------------------------------------- attacks
def _cw(det, clf):
    return ra.CarliniWagnerWB(max_iter=10, binary_search_steps=1, phase1_search_steps=1)


def _run_cw(attack, det, x, y):
    return attack.generate(det, torch.as_tensor(x), torch.as_tensor(y)).x_adv.numpy()


ATTACKS = {
    "CarliniWagnerWB": (_cw, _run_cw),
    "CarliniWagnerWBART": (
        lambda det, clf: ra.CarliniWagnerWBART(clf, det, max_iter=10, binary_search_steps=1, phase1_search_steps=1,
                                               verbose=False),
        lambda attack, det, x, y: attack.generate(x, y)),
    "CarliniWagnerWBTorchattacks": (
        lambda det, clf: ra.CarliniWagnerWBTorchattacks(det.model, det, max_iter=10, binary_search_steps=1,
                                                        phase1_search_steps=1),
        lambda attack, det, x, y: attack(torch.as_tensor(x), torch.as_tensor(y)).numpy()),
    "DetectorPGD": (lambda det, clf: ra.DetectorPGD(0.1, steps=3),
                    lambda attack, det, x, y: attack.generate(det, x, y).x_adv.numpy()),
    "DetectorPGDART": (lambda det, clf: ra.DetectorPGDART(clf, det, 0.1, steps=3, verbose=False),
                       lambda attack, det, x, y: attack.generate(x, y)),
    "DetectorPGDTorchattacks": (
        lambda det, clf: ra.DetectorPGDTorchattacks(det.model, det, eps=0.1, steps=3),
        lambda attack, det, x, y: attack(torch.as_tensor(x), torch.as_tensor(y)).numpy()),
    "UniformNoise": (lambda det, clf: ra.UniformNoise(0.1, (-0.5, 0.5), seed=0),
                     lambda attack, det, x, y: attack.generate(x)),
    "RayS": (lambda det, clf: ra.RayS(clf, eps=0.1, max_queries=40),
             lambda attack, det, x, y: attack.generate(x, y)),
}


@pytest.fixture(scope="module")
def kd(digits, clf):
    """One K-density detector for the attack contracts (fitted once, not per attack)."""
    return ra.KDensityDetector(clf, n_per_class=40).fit(digits.x_train, digits.y_train,
                                                        x_calibration=digits.x_test[:200])


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_contract(name, digits, clf, kd):
    if name.endswith("Torchattacks"):  # the optional extra
        pytest.importorskip("torchattacks")
    det = kd
    make, run = ATTACKS[name]
    attack = make(det, clf)
    x, y = digits.x_test[:6].copy(), digits.y_test[:6]
    x_before = x.copy()
    model = det.model
    model.train()
    torch.manual_seed(9)
    before = torch.rand(2)
    torch.manual_seed(9)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = run(attack, det, x, y)
        assert all(m.training for m in model.modules())  # mode restored
    finally:
        model.eval()
    assert torch.equal(torch.rand(2), before)  # no global reseeding
    np.testing.assert_array_equal(x, x_before)
    assert out.shape == x.shape and np.isfinite(out).all()
    assert out.min() >= -0.5 and out.max() <= 0.5  # within clip values


# --------------------------------------------------------------------- every registered adaptive attack
def _registered():
    from rce_art.adapters import ADAPTIVE_ATTACKS

    return sorted(ADAPTIVE_ATTACKS)


@pytest.mark.parametrize("name", _registered())
def test_registered_adaptive_attack_contract(name, digits, kd):
    """Every name build_adaptive_attack knows, at a tiny budget: examples in the ball and the pixel range, finite,
    success exactly "misclassified AND not flagged" (recomputed with detect), the same examples under the same seed."""
    import importlib.util

    from rce_art.adapters import build_adaptive_attack

    toolkit = {"ta-": "torchattacks", "fb-": "foolbox"}.get(name[:3])
    if toolkit and importlib.util.find_spec(toolkit) is None:
        pytest.skip(f"{toolkit} is not installed")
    eps, x, y = 0.15, digits.x_test[300:310], digits.y_test[300:310]
    budget = {"cw-wb": 0.02, "rays": 0.1}.get(name, 0.05)
    runs = [ra.WorstCaseEnsemble([build_adaptive_attack(name, eps, budget=budget, seed=3)]).run(kd, x, y)
            for _ in range(2)]
    r = runs[0]
    adv = r.x_adv.numpy()
    assert adv.shape == x.shape and np.isfinite(adv).all()
    assert adv.min() >= -0.5 and adv.max() <= 0.5
    assert np.abs(adv - x).max() <= eps + 1e-5
    report, flagged = kd.detect(adv)
    np.testing.assert_array_equal(r.broken, (report["predicted_class"] != y) & ~flagged)
    np.testing.assert_array_equal(adv, runs[1].x_adv.numpy())  # deterministic under its seed
    np.testing.assert_array_equal(r.broken, runs[1].broken)


# ------------------------------------------------------------ every detector x every adaptive attack path
#: parametrisations whose scoring path differs from the fitted fixture's (name, factory, needs a combiner)
VARIANTS = [
    ("mahalanobis-eps-no-combiner", lambda clf: ra.MahalanobisDetector(clf, eps=0.002), False),
    ("mahalanobis-layers-combiner", lambda clf: ra.MahalanobisDetector(clf, layers=["stem.2", "features"]), True),
    ("lid-one-layer", lambda clf: ra.LIDDetector(clf, layers=["features"], k=10, n_reference=50), True),
    ("er-z-combiner", lambda clf: ra.ERDetector(clf, code="z", n_per_class=40, seed=0), True),
]


def _adaptive_paths(det, digits):
    """Every DetectorPGD mode (with EOT on stochastic detectors), the sanity checks, and C&W-wb where it applies."""
    from rce_art.evaluation import detector_pgd_sanity

    x, y = torch.as_tensor(digits.x_test[300:304]), torch.as_tensor(digits.y_test[300:304])
    for mode in ("classifier", "combined", "selective", "orthogonal"):
        eot = 2 if det.stochastic else 1
        r = ra.DetectorPGD(0.1, mode=mode, steps=2, eot_samples=eot).run(det, x, y)
        assert torch.isfinite(r.score).all() and (r.linf <= 0.1 + 1e-6).all(), mode
    s = detector_pgd_sanity(ra.DetectorPGD(0.1, mode="selective", steps=2), det, x, y, budgets=(1, 2),
                            unbounded_steps=2)
    assert s["nonfinite_grad_fraction"] == 0.0 and len(s["success_by_budget"]) == 2
    if isinstance(det, ra.KDensityDetector):
        cw = ra.CarliniWagnerWB(max_iter=3, binary_search_steps=1, phase1_search_steps=1).run(det, x, y)
        assert torch.isfinite(cw.l2).all()


def test_every_detector_runs_through_every_adaptive_attack(fitted, digits):
    """0.3: DetectorPGD and detector_pgd_sanity crashed on MahalanobisDetector(eps>0) (scoring under no_grad)."""
    _adaptive_paths(fitted, digits)


@pytest.mark.parametrize("variant", [v[0] for v in VARIANTS])
def test_every_detector_variant_runs_through_every_adaptive_attack(variant, digits, clf, adversarial, request):
    _, make, combiner = next(v for v in VARIANTS if v[0] == variant)
    model = request.getfixturevalue("er_clf") if variant.startswith("er") else clf
    kw = {"x_clean": adversarial[0], "x_adv": adversarial[1], "attack": "fgsm"} if combiner else {}
    if variant.startswith("er"):
        from art.attacks.evasion import FastGradientMethod

        kw["x_adv"] = FastGradientMethod(model, eps=0.2).generate(adversarial[0])
    det = make(model).fit(digits.x_train, digits.y_train, x_calibration=digits.x_test[:200], **kw)
    _adaptive_paths(det, digits)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_warns_when_its_threshold_sits_on_fit_rows(name, digits, clf, adversarial, request):
    """0.3 calibrated on a share of the training inputs without a word (realised FPR 0.08-0.22 at a nominal 0.05)."""
    make, combiner = DETECTORS[name]
    model = request.getfixturevalue(NEEDS_MODEL[name]) if name in NEEDS_MODEL else clf
    kw = {"x_clean": adversarial[0], "x_adv": adversarial[1], "attack": "fgsm"} if combiner else {}
    if name in NEEDS_MODEL and combiner:
        kw = {}
    with pytest.warns(ra.CalibrationWarning, match="x_calibration"):
        make(model).fit(digits.x_train[:400], digits.y_train[:400], **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ra.CalibrationWarning)
        make(model).fit(digits.x_train[:400], digits.y_train[:400], x_calibration=digits.x_test[:100], **kw)


# ------------------------------------------------------------------------ the detector as an extra class
def test_every_detector_is_an_extra_class_in_every_toolkit_form(fitted, digits, adversarial):
    """Issue 20: the extra logit wins exactly when the detector flags, in the module, its folded and ART forms; every
    toolkit's attack on it counts success as misclassified AND not flagged."""
    import importlib.util

    from rce_art.adapters import build_adaptive_attack
    from rce_art.attacks import DetectorAsClass, system_success

    x = np.concatenate([adversarial[0][:50], adversarial[1][:50]])
    y = np.concatenate([digits.y_test[200:250]] * 2)
    report, flagged = fitted.detect(x)
    for system, ref in ((DetectorAsClass(fitted), flagged),
                        (DetectorAsClass(fitted, fpr=0.5), report["score"] < ra.detectors.calibrate_threshold(
                            fitted.calibration_scores_.numpy(), 0.5))):
        with torch.no_grad():
            out = system(torch.as_tensor(x))
        np.testing.assert_array_equal(out.argmax(1).numpy() == 10, ref)
        np.testing.assert_array_equal(system.art_classifier().predict(x).argmax(1) == 10, ref)
        ok = system_success(out, torch.as_tensor(y)).numpy()
        np.testing.assert_array_equal(ok, (report["predicted_class"] != y) & ~ref)
        for c in np.unique(y):
            with torch.no_grad():
                folded = system.folded(int(c))(torch.as_tensor(x[y == c])).argmax(1).numpy()
            np.testing.assert_array_equal(folded != c, ok[y == c])
    xg = torch.tensor(x[:8], requires_grad=True)
    DetectorAsClass(fitted)(xg)[:, 10].sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    forms = {"apgd-ce": "rce_art", "art-apgd-ce": "art", "ta-apgd": "torchattacks", "fb-pgd": "foolbox"}
    for name, module in forms.items():
        if module not in ("art", "rce_art") and importlib.util.find_spec(module) is None:
            continue
        r = ra.WorstCaseEnsemble([build_adaptive_attack(name, 0.2, budget=0.05)]).run(fitted, x[50:62], y[50:62])
        rep, fl = fitted.detect(r.x_adv.numpy())
        np.testing.assert_array_equal(r.broken, (rep["predicted_class"] != y[50:62]) & ~fl)
        assert r.linf.max() <= 0.2 + 1e-5
