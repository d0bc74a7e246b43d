"""ER-Classifier (losses, trainer and variants, in-loop PGD), ER-Detector, RayS and the ACC criteria."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rce_art as ra
from rce_art.evaluation import acc_criteria
from rce_art.losses import critic_objective, encoder_prior_objective, trades_loss
from rce_art.training import linf_pgd


def _er_model(k=8, **kw):
    torch.manual_seed(0)
    return ra.ERClassifier.small(1, 10, k=k, width=8, **kw)


# ------------------------------------------------------------------------------------------------- losses
def test_er_objectives_hand_values():
    d_prior, d_code = torch.tensor([1.0, 3.0]), torch.tensor([0.5, -0.5, 1.0])
    assert critic_objective(d_prior, d_code, 2.0).item() == pytest.approx(2.0 * (2.0 - 1.0 / 3.0))
    assert encoder_prior_objective(d_code, 0.5).item() == pytest.approx(0.5 / 3.0)
    with pytest.raises(ValueError, match="critic scores must have shape"):
        critic_objective(torch.zeros(0), d_code)
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        encoder_prior_objective(d_code, -1.0)


def test_trades_loss_hand_value():
    clean, adv, y = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([0])
    p = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    q = [1 / (1 + math.e), math.e / (1 + math.e)]
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    assert trades_loss(clean, adv, y, beta=3.0).item() == pytest.approx(-math.log(p[0]) + 3.0 * kl, rel=1e-6)
    assert trades_loss(clean, clean, y, beta=3.0).item() == pytest.approx(F.cross_entropy(clean, y).item())
    with pytest.raises(ValueError, match="logits_adv must have shape"):
        trades_loss(clean, adv[:, :1], y)


# ------------------------------------------------------------------------------------------------ trainer
def test_er_trainer_without_regulariser_or_minmax_equals_ce_training(digits):
    x, y = digits.x_train[:256], digits.y_train[:256]
    states = []
    for make in (lambda m: ra.CETrainer(m, clip_values=digits.clip_values, epochs=2, batch_size=64, verbose=False),
                 lambda m: ra.ERTrainer(m, clip_values=digits.clip_values, lam=0.0, adversarial=None, epochs=2,
                                        batch_size=64, verbose=False),
                 lambda m: ra.ERTrainer(m, clip_values=digits.clip_values, regularizer=None, adversarial=None,
                                        epochs=2, batch_size=64, verbose=False)):
        model = _er_model()
        make(model).fit(x, y)
        states.append(model.state_dict())
    for other in states[1:]:
        assert all(torch.equal(states[0][k], other[k]) for k in states[0])


def test_er_trainer_clips_the_critic_and_keeps_global_rng(digits):
    model = _er_model()
    trainer = ra.ERTrainer(model, clip_values=digits.clip_values, lam=1.0, critic_clip=0.02, critic_hidden=32,
                           pgd_eps=0.2 * (digits.clip_values[1] - digits.clip_values[0]), pgd_alpha=0.05, pgd_steps=3,
                           epochs=1, batch_size=64, verbose=False)
    torch.manual_seed(7)
    before = torch.rand(2)
    torch.manual_seed(7)
    trainer.fit(digits.x_train[:256], digits.y_train[:256])
    assert torch.equal(torch.rand(2), before)
    assert all(p.abs().max() <= 0.02 + 1e-7 for p in trainer.critic_.parameters())
    assert len(trainer.critic_values_) == 4 and all(math.isfinite(v) for v in trainer.critic_values_)
    assert trainer.settings()["pgd_steps"] == 3


@pytest.mark.parametrize("variant", [{"loss": "trades", "pgd_steps": 2}, {"regularizer": "vae", "adversarial": None}])
def test_er_variants_train(variant, digits):
    model = _er_model(variational=variant.get("regularizer") == "vae")
    trainer = ra.ERTrainer(model, clip_values=digits.clip_values, epochs=1, batch_size=64, verbose=False,
                           pgd_eps=0.1, pgd_alpha=0.05, critic_hidden=16, **variant)
    trainer.fit(digits.x_train[:128], digits.y_train[:128])
    assert np.isfinite(trainer.history_.loss).all()
    assert trainer.get_classifier().predict(digits.x_test[:4]).shape == (4, 10)


def test_er_trainer_rejects_bad_settings(digits):
    with pytest.raises(TypeError, match="ERClassifier"):
        ra.ERTrainer(ra.SmallCNN(1, 10), clip_values=digits.clip_values)
    with pytest.raises(ValueError, match="variational"):
        ra.ERTrainer(_er_model(), clip_values=digits.clip_values, regularizer="vae")
    with pytest.raises(ValueError, match="regularizer must be one of"):
        ra.ERTrainer(_er_model(), clip_values=digits.clip_values, regularizer="gan")
    with pytest.raises(ValueError, match="loss='trades' needs adversarial='pgd'"):
        ra.ERTrainer(_er_model(), clip_values=digits.clip_values, loss="trades", adversarial=None)


def test_in_loop_pgd_matches_arts_pgd(ce_trainer, digits):
    from art.attacks.evasion import ProjectedGradientDescent

    clf = ce_trainer.get_classifier()
    x, y = digits.x_test[:64], digits.y_test[:64]
    span = digits.clip_values[1] - digits.clip_values[0]
    eps, alpha = 0.1 * span, 0.02 * span
    ours = linf_pgd(ce_trainer.get_model(), torch.as_tensor(x), torch.as_tensor(y), eps, alpha, 5,
                    digits.clip_values, random_start=False).numpy()
    art = ProjectedGradientDescent(clf, eps=eps, eps_step=alpha, max_iter=5, num_random_init=0,
                                   verbose=False).generate(x, np.eye(10)[y])
    assert np.abs(ours - x).max() <= eps + 1e-6
    agree = np.isclose(ours, art, atol=1e-5).mean()
    assert agree > 0.999, agree  # the same examples up to float rounding of rare zero gradients


# ----------------------------------------------------------------------------------------------- detector
def test_er_detector_density_against_float64_brute_force(digits):
    model = _er_model()
    ra.ERTrainer(model, clip_values=digits.clip_values, regularizer=None, adversarial=None, epochs=2, batch_size=64,
                 verbose=False).fit(digits.x_train, digits.y_train)
    for code in ("z", "combined"):
        det = ra.ERDetector(model, code=code, n_per_class=40, bandwidth=0.7, seed=0)
        det.fit(digits.x_train, digits.y_train)
        with torch.no_grad():
            logits, z = det.codes(torch.as_tensor(digits.x_test[:20]))
        pred = logits.argmax(1)
        expected = []
        for q, c in zip(z.double(), pred):
            k = det.kernels_[int(c)].double()
            expected.append(torch.logsumexp(-((k - q) ** 2).sum(1) / 0.7**2, 0).item() - math.log(len(k)))
        assert np.allclose(det.score(digits.x_test[:20]), expected, rtol=1e-4, atol=1e-4)
        if code == "combined":
            assert z.shape[1] == model.k + 4  # one mean per encoder activation (SmallCNN: 4 ReLUs)


def test_er_detector_combiner_save_load_and_errors(digits, tmp_path):
    model = _er_model()
    ra.ERTrainer(model, clip_values=digits.clip_values, regularizer=None, adversarial=None, epochs=2, batch_size=64,
                 verbose=False).fit(digits.x_train, digits.y_train)
    x_clean = digits.x_test[:60]
    x_adv = linf_pgd(model, torch.as_tensor(x_clean), torch.as_tensor(digits.y_test[:60]), 0.3, 0.05, 5,
                     digits.clip_values).numpy()
    det = ra.ERDetector(model, code="combined", seed=0).fit(digits.x_train, digits.y_train, x_clean=x_clean,
                                                           x_adv=x_adv)
    assert det.noise_std_ is None and det.combiner_.n_fit_ == {"normal": 60, "adversarial": 60}  # no noisy rows
    s = det.score(digits.x_test[60:100])
    det.save(tmp_path / "er")
    again = ra.ERDetector.load(tmp_path / "er", model)
    assert np.allclose(again.score(digits.x_test[60:100]), s)
    x = torch.tensor(digits.x_test[:4], requires_grad=True)
    det.score_tensor(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(TypeError, match="ERClassifier"):
        ra.ERDetector(ra.SmallCNN(1, 10))
    with pytest.raises(ValueError, match="code must be one of"):
        ra.ERDetector(model, code="z2")


def test_acc_criteria_hand_counted():
    clean_flagged = np.array([0, 1, 0, 0], bool)  # one false positive: ACC-NADV 3/4
    adv_flagged = np.array([1, 0, 0, 1], bool)
    adv_pred, y = np.array([5, 2, 7, 1]), np.array([5, 2, 3, 0])  # unflagged: #1 still right, #2 wrong
    assert acc_criteria(clean_flagged, adv_flagged, adv_pred, y) == {"acc_nadv": 0.75, "acc_com": 0.75}


# --------------------------------------------------------------------------------------------------- RayS
def test_rays_budget_bounds_and_success_on_an_undefended_model(ce_trainer, digits):
    clf = ce_trainer.get_classifier()
    x, y = digits.x_test[:24], digits.y_test[:24]
    span = digits.clip_values[1] - digits.clip_values[0]
    eps = 0.4 * span
    res = ra.RayS(clf, eps=eps, max_queries=300, batch_size=8).run(x, y)
    assert int(res.queries.max()) <= 300
    x_adv = res.x_adv.numpy()
    assert np.abs(x_adv - x).max() <= eps + 1e-6
    assert x_adv.min() >= digits.clip_values[0] - 1e-7 and x_adv.max() <= digits.clip_values[1] + 1e-7
    pred = clf.predict(x_adv).argmax(1)
    assert np.array_equal(pred != y, res.success.numpy())  # success means misclassified within eps
    assert res.success.float().mean() > 0.8
    tight = ra.RayS(clf, eps=eps, max_queries=5).run(x, y)
    assert int(tight.queries.max()) <= 5
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        ra.RayS(clf, eps=0.0)
    with pytest.raises(ValueError, match="clip_values"):
        ra.RayS(torch.nn.Linear(2, 2), eps=0.1)


def test_er_classifier_shapes_and_resnet_trunk():
    torch.manual_seed(0)
    net = ra.ERClassifier.resnet(3, 10, k=12, depth=32).eval()
    logits, z = net.logits_and_features(torch.rand(2, 3, 32, 32) - 0.5)
    assert logits.shape == (2, 10) and z.shape == (2, 12)
    vae = ra.ERClassifier.small(1, 10, k=4, width=8, variational=True)
    vae.train()
    assert vae.encode(torch.zeros(3, 1, 8, 8)).shape == (3, 4) and vae.last_kl.shape == (3,)
    with pytest.raises(ValueError, match="depth must be 32 or 56"):
        ra.ERClassifier.resnet(3, 10, depth=20)


def test_encoder_step_sees_the_codes_the_critic_learned_on_and_leaves_batchnorm_statistics(digits):
    """0.3 ran line 9's encoder in eval mode while the critic learned on train-mode codes (BatchNorm batch
    statistics): at encoder_lr 1e-4 clean accuracy fell to 0.18 vs 0.87 in train mode."""
    torch.manual_seed(0)
    net = ra.ERClassifier.small(1, 10, k=8, width=8)
    clf = ra.make_art_classifier(net, digits.input_shape, 10, digits.clip_values)
    trainer = ra.ERTrainer(clf, adversarial=None, critic_hidden=16, epochs=1)
    trainer._batch_loss(None)  # builds the critic and its optimisers as fit does
    assert max(p.abs().max() for p in trainer.critic_.parameters()) <= trainer.critic_clip  # clipped from the start
    trainer._last_adv = torch.as_tensor(digits.x_train[:32])
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    modes = []
    hooks = [m.register_forward_pre_hook(lambda m, a: modes.append(m.training)) for m in bns]
    net.train()
    before = [b.clone() for b in net.buffers()]
    trainer._post_step()()
    for h in hooks:
        h.remove()
    assert modes and all(modes)  # train mode, as in line 7
    assert all(torch.equal(a, b) for a, b in zip(before, net.buffers()))  # running statistics untouched


def test_er_trades_runs_clean_and_adversarial_batches_in_separate_passes(digits, monkeypatch):
    """TRADES' reference runs clean and adversarial inputs in separate passes (each batch's own BatchNorm stats)."""
    torch.manual_seed(0)
    net = ra.ERClassifier.small(1, 10, k=8, width=8)
    clf = ra.make_art_classifier(net, digits.input_shape, 10, digits.clip_values)
    sizes = []
    net.encoder.stem.register_forward_pre_hook(lambda m, a: sizes.append(a[0].shape[0]) if m.training else None)
    ra.ERTrainer(clf, loss="trades", critic_hidden=16, pgd_eps=0.05, pgd_alpha=0.02, pgd_steps=1, epochs=1,
                 batch_size=32, verbose=False).fit(digits.x_train[:64], digits.y_train[:64])
    assert sizes and max(sizes) == 32  # never the concatenated 64-row batch
