"""Shared fixtures: digits data and small CE/RCE models trained once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rce_art as ra

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits() -> ra.Dataset:
    return ra.load_dataset("digits")


def _train(digits: ra.Dataset, trainer_cls: type, epochs: int = 15):
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
