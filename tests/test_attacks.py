"""Attack adapters (ART, Foolbox, torchattacks), RAND and the paper attack registry."""

import importlib.util

import numpy as np
import pytest
import torch

import rce_art as ra
from rce_art.adapters import ARTAttack, FoolboxAttack, TorchattacksAttack

N = 40


@pytest.fixture(scope="module")
def batch(digits):
    return digits.x_test[:N].copy(), digits.y_test[:N]


def _error(model, x_adv, y):
    with torch.no_grad():
        return float((model(torch.as_tensor(x_adv, dtype=torch.float32)).argmax(1).numpy() != y).mean())


def _adapter(backend, trainer, clip):
    model = trainer.get_model()
    if backend == "art":
        from art.attacks.evasion import ProjectedGradientDescent

        return ARTAttack(ProjectedGradientDescent(trainer.get_classifier(), eps=0.2, eps_step=0.05, max_iter=10,
                                                  verbose=False))
    if backend == "foolbox":
        fb = pytest.importorskip("foolbox")
        return FoolboxAttack(fb.attacks.LinfPGD(steps=10, abs_stepsize=0.05), model, clip, epsilon=0.2)
    ta = pytest.importorskip("torchattacks")
    return TorchattacksAttack(ta.PGD(model, eps=0.2, alpha=0.05, steps=10), clip)


@pytest.mark.parametrize("backend", ["art", "foolbox", "torchattacks"])
@pytest.mark.parametrize("objective", ["CE", "RCE"])
def test_adapter_contract_and_success(backend, objective, batch, digits, ce_trainer, rce_trainer):
    trainer = ce_trainer if objective == "CE" else rce_trainer
    model = trainer.get_model()
    adapter = _adapter(backend, trainer, digits.clip_values)
    x, y = batch
    x_before = x.copy()
    model.train()  # the adapter must run in eval mode and give the mode back
    try:
        x_adv = adapter.generate(x)
        assert model.training and all(m.training for m in model.modules())
    finally:
        model.eval()
    np.testing.assert_array_equal(x, x_before)  # input untouched
    assert isinstance(x_adv, np.ndarray) and x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= -0.5 and x_adv.max() <= 0.5
    assert np.abs(x_adv - x).max() <= 0.2 + 1e-5
    assert _error(model, x_adv, y) > 0.5

    xt = torch.tensor(x, dtype=torch.float64)
    out = adapter.generate(xt)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.device == xt.device
    assert out.shape == xt.shape and torch.equal(xt, torch.tensor(x, dtype=torch.float64))


def test_torchattacks_cw_adapter_succeeds_on_rce_model(batch, digits, rce_trainer):
    ta = pytest.importorskip("torchattacks")

    model = rce_trainer.get_model()
    x, y = batch
    assert (x == -0.5).mean() > 0.3  # many pixels sit exactly at the lower bound
    x_adv = TorchattacksAttack(ta.CW(model, c=10.0, kappa=0.0, steps=100, lr=0.01), digits.clip_values).generate(x)
    assert _error(model, x_adv, y) >= 0.75
    at_bound = x == -0.5
    assert (np.abs(x_adv - x)[at_bound] > 1e-3).any()  # pixels at the bound can move
    with torch.no_grad():  # RCE logits are negative for most classes: the case torchattacks' mask trick gets wrong
        assert (model(torch.as_tensor(x)) < 0).float().mean() > 0.3


def test_adapters_reject_wrong_attack_objects(digits, ce_trainer):
    with pytest.raises(TypeError, match="EvasionAttack"):
        ARTAttack(object())
    if importlib.util.find_spec("foolbox"):
        with pytest.raises(TypeError, match="foolbox attack"):
            FoolboxAttack(object(), ce_trainer.get_model(), digits.clip_values)
    if importlib.util.find_spec("torchattacks"):
        with pytest.raises(TypeError, match="torchattacks attack"):
            TorchattacksAttack(object(), digits.clip_values)


def test_uniform_noise_is_seeded_bounded_and_typed(batch):
    x, _ = batch
    a, b = ra.UniformNoise(0.05, (-0.5, 0.5), seed=3).generate(x), ra.UniformNoise(0.05, (-0.5, 0.5), seed=3).generate(x)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - x).max() <= 0.05 + 1e-7 and a.min() >= -0.5 and a.max() <= 0.5
    assert (np.abs(a - x) > 0).mean() > 0.5


def test_registry_builds_every_available_attack(batch, digits, ce_trainer):
    from rce_art.adapters import AVAILABLE

    clf = ce_trainer.get_classifier()
    x, y = batch
    for backend, names in AVAILABLE.items():
        if backend != "art" and not importlib.util.find_spec(backend):
            continue
        for name in sorted(names):
            overrides = {}
            if name.startswith("cw"):
                overrides = {"max_iter": 5, "binary_search_steps": 1} if backend == "art" else {"steps": 5}
                if backend == "foolbox":
                    overrides["binary_search_steps"] = 1
            attack = ra.build_attack(name, clf, backend, eps=0.2, **overrides)
            x_adv = attack.generate(x[:4])
            assert x_adv.shape == (4, 1, 8, 8) and x_adv.min() >= -0.5 and x_adv.max() <= 0.5, (backend, name)
            assert attack.seconds_per_example > 0 and name.upper() in attack.describe()


def test_registry_targets(batch, ce_trainer):
    clf = ce_trainer.get_classifier()
    x, _ = batch
    model = ce_trainer.get_model()
    with torch.no_grad():
        logits = model(torch.as_tensor(x))
    ilcm = ra.build_attack("ilcm", clf, "art", eps=0.2)
    assert torch.equal(ilcm.target_labels(x), logits.argmin(1))
    jsma = ra.build_attack("jsma", clf, "art", seed=5)
    t1, t2 = jsma.target_labels(x), ra.build_attack("jsma", clf, "art", seed=5).target_labels(x)
    assert torch.equal(t1, t2) and (t1 != logits.argmax(1)).all()
    assert ra.build_attack("fgsm", clf, "art").target_labels(x) is None


def test_registry_defaults_follow_the_paper(ce_trainer):
    clf = ce_trainer.get_classifier()
    bim = ra.build_attack("bim", clf, "art", eps=0.1)
    assert bim.params["max_iter"] == 10 and bim.params["eps_step"] == pytest.approx(0.01)
    if importlib.util.find_spec("foolbox"):
        assert ra.build_attack("cw-hc", clf, "foolbox").params["confidence"] == 10.0
    assert ra.build_attack("cw", clf, "art", paper=True).params["max_iter"] == 10_000
    assert ra.build_attack("jsma", clf, "art").params["gamma"] == 1.0  # at most 100 of 64 pixels
    assert ra.build_attack("bim", clf, "art", eps=0.1, max_iter=3).params["max_iter"] == 3  # overridable


def test_registry_errors(ce_trainer):
    clf = ce_trainer.get_classifier()
    with pytest.raises(ValueError, match="unknown attack"):
        ra.build_attack("deepfool", clf)
    with pytest.raises(ValueError, match="unknown backend"):
        ra.build_attack("fgsm", clf, "cleverhans")
    with pytest.raises(ValueError, match="'jsma' is not available on 'foolbox'"):
        ra.build_attack("jsma", clf, "foolbox")


def test_registry_does_not_touch_global_random_state(batch, ce_trainer):
    clf = ce_trainer.get_classifier()
    x, _ = batch
    torch.manual_seed(123)
    np.random.seed(123)
    expected_t, expected_np = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    atk = ra.build_attack("pgd", clf, "art", eps=0.2, seed=7)
    a = atk.generate(x[:4])
    assert torch.equal(torch.rand(3), expected_t) and np.array_equal(np.random.rand(3), expected_np)
    np.testing.assert_array_equal(a, ra.build_attack("pgd", clf, "art", eps=0.2, seed=7).generate(x[:4]))  # seeded


def test_registry_attacks_through_the_estimators_preprocessing(digits):
    # a classifier whose network sees (x - mean) / std: the attack must see exactly what ART's predict sees
    torch.manual_seed(0)
    net = ra.SmallCNN(1, 10).eval()
    clf = ra.make_art_classifier(net, digits.input_shape, 10, digits.clip_values, preprocessing=(0.1, 0.3))
    atk = ra.build_attack("fgsm", clf, "art", eps=0.1)
    x = digits.x_test[:8]
    with torch.no_grad():
        ref = net((torch.as_tensor(x) - 0.1) / 0.3)
    np.testing.assert_allclose(atk.model(torch.as_tensor(x)).detach().numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
