"""Shared fixtures: digits data and small CE/RCE models trained once per session."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch

import rce_art as ra

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits() -> ra.DatasetSplits:
    return ra.load_dataset("digits")


def _train(digits: ra.DatasetSplits, trainer_cls: type, epochs: int = 15):
    torch.manual_seed(0)
    net = ra.SmallCNN(1, 10)
    raw = ra.make_art_classifier(net, digits.input_shape, 10, digits.clip_values)
    return trainer_cls(raw, epochs=epochs, lr=0.1, batch_size=64, seed=0, verbose=False).fit(digits.x_train, digits.y_train)


@pytest.fixture(scope="session")
def ce_trainer(digits):
    return _train(digits, ra.CETrainer)


@pytest.fixture(scope="session")
def rce_trainer(digits):
    return _train(digits, ra.RCETrainer)


@pytest.fixture(scope="session")
def dropout_clf(digits):
    """A small CNN with dropout (for the MC-dropout detectors), trained briefly, once per session."""
    torch.manual_seed(0)
    raw = ra.make_art_classifier(ra.SmallCNN(1, 10, dropout=0.5), digits.input_shape, 10, digits.clip_values)
    return ra.CETrainer(raw, epochs=6, batch_size=64, verbose=False).fit(digits.x_train, digits.y_train).classifier


@pytest.fixture(scope="session")
def rce_detector(digits, rce_trainer):
    return ra.KDensityDetector(rce_trainer.get_classifier(), seed=0).fit(digits.x_train, digits.y_train)


@pytest.fixture()
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).eval()


@pytest.fixture()
def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, size=(60, 1, 8, 8)).astype(np.float32)
    y = np.repeat(np.arange(3), 20)
    return x, y


USER_MODULE = textwrap.dedent('''
    import torch.nn as nn

    def make_net():
        """A user's own model: no BatchNorm, plain Sequential, logits out."""
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
''')


@pytest.fixture(scope="session")
def user_files(tmp_path_factory, digits):
    """A model file, its weights (safetensors, trained here with the user's own loop) and a .npz of [0, 1] inputs."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("user")
    (root / "usernet.py").write_text(USER_MODULE)
    sys.path.insert(0, str(root))
    try:
        import usernet
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    net = usernet.make_net()
    x_train = torch.as_tensor(digits.x_train + 0.5)  # the user's data is in [0, 1]; preprocessing (0.5, 0.5)
    y_train = torch.as_tensor(digits.y_train)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(15):
        for i in range(0, len(x_train), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net((x_train[i : i + 64] - 0.5) / 0.5), y_train[i : i + 64]).backward()
            opt.step()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(root / "net.safetensors"))
    np.savez(root / "data.npz", x=(digits.x_test[:260] + 0.5).astype(np.float32), y=digits.y_test[:260],
             x_train=(digits.x_train + 0.5).astype(np.float32), y_train=digits.y_train)
    return root, net


def clf_of(net):
    """The user's net as an ART classifier of [0, 1] inputs with preprocessing (0.5, 0.5)."""
    return ra.make_art_classifier(net, (1, 8, 8), 10, (0.0, 1.0), preprocessing=(0.5, 0.5))


def user_data(digits):
    """x, y (24 inputs), x_calibration (160), x_fit, y_fit of digits in [0, 1]."""
    x, y = (digits.x_test + 0.5).astype(np.float32), digits.y_test
    return x[:24], y[:24], x[100:260], (digits.x_train + 0.5).astype(np.float32), digits.y_train
