import numpy as np
import pytest
import torch
from torch import nn

import rce_art as ra
from rce_art.models import as_feature_model, logits_and_features


@pytest.mark.parametrize("factory,depth_blocks", [(ra.resnet32, 5), (ra.resnet56, 9)])
@pytest.mark.parametrize("channels,size", [(1, 8), (3, 32), (1, 28)])
def test_resnets_give_64d_features_for_any_size(factory, depth_blocks, channels, size):
    net = factory(in_channels=channels, num_classes=10).eval()
    assert len(net.blocks) == 3 * depth_blocks
    logits, feats = net.logits_and_features(torch.zeros(2, channels, size, size))
    assert logits.shape == (2, 10) and feats.shape == (2, 64)
    assert torch.allclose(net(torch.zeros(2, channels, size, size)), logits)


def test_resnet_rejects_too_small_inputs():
    with pytest.raises(ValueError, match="H, W >= 8"):
        ra.resnet32(1).logits_and_features(torch.zeros(1, 1, 4, 4))


def test_feature_tap_matches_native_features():
    torch.manual_seed(0)
    net = ra.SmallCNN(1, 10).eval()
    x = torch.randn(4, 1, 8, 8)
    native = net.logits_and_features(x)
    tapped = ra.FeatureTap(net).logits_and_features(x)  # last nn.Linear is net.fc
    assert torch.equal(native[0], tapped[0]) and torch.equal(native[1], tapped[1])


def test_feature_tap_on_user_sequential_and_named_layer():
    torch.manual_seed(0)
    user = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.randn(5, 1, 4, 4)
    _, f_last = ra.FeatureTap(user).logits_and_features(x)
    assert torch.allclose(f_last, torch.tanh(user[1](x.flatten(1))))
    _, f_named = ra.FeatureTap(user, layer="1").logits_and_features(x)
    assert torch.equal(f_named, x.flatten(1))
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        ra.FeatureTap(user, layer="nope")
    with pytest.raises(ValueError, match="no nn.Linear"):
        ra.FeatureTap(nn.Sequential(nn.Flatten()))


def test_feature_tap_leaves_no_hook_on_the_users_module():
    user = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    tap = ra.FeatureTap(user)
    assert not user[2]._forward_pre_hooks  # nothing registered at construction
    for _ in range(3):
        logits, feats = tap.logits_and_features(torch.zeros(2, 4))
        logits_and_features(user, torch.zeros(2, 4))  # the helper wraps a fresh tap per call
    assert feats.shape == (2, 8) and not user[2]._forward_pre_hooks  # every hook removed after use
    assert "_layer" not in dict(tap.named_modules()) and set(tap.state_dict()) == {f"model.{k}" for k in user.state_dict()}


def test_preprocessed_module_applies_the_estimators_preprocessing():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    clf = ra.make_art_classifier(net, (1, 2, 2), 3, (0.0, 1.0), preprocessing=(0.5, 0.25))
    view = ra.models.resolve_model(clf)
    x = torch.rand(5, 1, 2, 2)
    assert view.has_preprocessing and not ra.models.resolve_model(net).has_preprocessing
    torch.testing.assert_close(ra.models.Preprocessed(view)(x), net((x - 0.5) / 0.25))
    np.testing.assert_allclose(clf.predict(x.numpy()), net((x - 0.5) / 0.25).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_reverse_logits_negates_and_keeps_features_and_mode():
    torch.manual_seed(0)
    net = ra.SmallCNN(1, 10).eval()
    rev = ra.ReverseLogits(net)
    assert not rev.training
    x = torch.randn(3, 1, 8, 8)
    z, h = net.logits_and_features(x)
    rz, rh = logits_and_features(rev, x)
    assert torch.equal(rz, -z) and torch.equal(rh, h) and torch.equal(rev(x), -z)
    assert as_feature_model(net) is net


def test_resnet_layer_taps_see_every_activation_output():
    """0.3 called one LeakyReLU module twice per block: LID layers="all" kept 16 of 31 activation outputs."""
    from rce_art.detectors import LayerFeatures

    net = ra.resnet32(in_channels=1, num_classes=10).eval()
    x = torch.randn(2, 1, 8, 8)
    calls = []
    hooks = [m.register_forward_hook(lambda m, a, o: calls.append(m)) for m in net.modules()
             if isinstance(m, nn.LeakyReLU)]
    net(x)
    for h in hooks:
        h.remove()
    assert len(calls) == 31 and len(set(map(id, calls))) == 31  # one module per call site
    layers = LayerFeatures.called_layers(net, x)
    assert sum(isinstance(net.get_submodule(n.split("#")[0]), nn.LeakyReLU) for n in layers[1:]) == 31


def test_layer_taps_name_each_call_of_a_reused_module():
    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.act, self.fc = nn.Linear(4, 6), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(self.act(self.b(self.act(self.a(x)))))

    from rce_art.detectors import LayerFeatures

    net = ra.FeatureTap(Reuse())
    x = torch.randn(5, 4)
    assert LayerFeatures.called_layers(net, x) == ["input", "model.a", "model.act#1", "model.b", "model.act#2",
                                                   "model.fc"]
    _, (first, second) = LayerFeatures(net, ["model.act#1", "model.act#2"])(x)
    torch.testing.assert_close(first, torch.relu(net.model.a(x)))
    torch.testing.assert_close(second, torch.relu(net.model.b(first)))
    with pytest.raises(RuntimeError, match=r"called 2 times.*model.act#1"):
        LayerFeatures(net, ["model.act"])(x)
