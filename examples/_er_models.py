"""The models of examples/reproduce_er.py: ER-Classifier and its variants (rce-art), Madry and TRADES (ART), CE.

Every model is cached under ``--out/models`` keyed by its settings (weights only, loaded with
``weights_only=True``).
"""

from __future__ import annotations

import argparse
from typing import Any

import _common as C
import numpy as np
import torch

import rce_art as ra
from rce_art.settings import ER_PAPER, er_training_settings

#: name -> ERTrainer arguments (ER family) or the baseline it is ("ce", "madry", "trades"), in the paper's order.
VARIANTS: dict[str, dict[str, Any] | str] = {
    "No defence": "ce",
    "Madry": "madry",
    "TRADES": "trades",
    "ER-Classifier": {},
    "ER-Classifier-": {"adversarial": None},
    "ER-TRADES": {"loss": "trades"},
    "E-CLA": {"regularizer": None, "adversarial": None},
    "VAE-CLA": {"regularizer": "vae", "adversarial": None},
}


def er_eps(args: argparse.Namespace, data: ra.DatasetSplits) -> float:
    """The evaluation eps in pixel units: ``--eps``, else the paper's per dataset with ``--paper``, else the
    dataset's quick default (``_common.DEFAULT_EPS``)."""
    span = data.clip_values[1] - data.clip_values[0]
    if args.eps is not None:
        return args.eps * span
    if args.paper and args.dataset in ER_PAPER["eps"]:
        return ER_PAPER["eps"][args.dataset] * span
    return C.DEFAULT_EPS[args.dataset] * span


def er_settings(args: argparse.Namespace, data: ra.DatasetSplits) -> dict[str, Any]:
    """Training settings shared by every model (``rce_art.settings.er_training_settings`` with the command line's
    overrides; printed with the results, "ours" where the paper is silent)."""
    eps = args.train_eps if args.train_eps is not None else er_eps(args, data)
    s = er_training_settings(args.paper, eps, digits=data.name == "digits")
    s.update(k=args.k, lam=args.lam, encoder_step=args.encoder_step)
    if args.epochs:
        s["epochs"] = args.epochs
    return s


def _er_net(data: ra.DatasetSplits, k: int, model: str, variational: bool = False) -> torch.nn.Module:
    """The ER network for ``--model``: a small CNN trunk, or a ResNet-32/56 (CIFAR-10), plus the map to the code."""
    if model != "small":
        return ra.ERClassifier.resnet(data.input_shape[0], data.nb_classes, k=k, depth=int(model[-2:]),
                                      variational=variational)
    width = 32 if data.input_shape[-1] < 16 else 16
    return ra.ERClassifier.small(data.input_shape[0], data.nb_classes, k=k, width=width, variational=variational)


class _ARTRun:
    """An ART adversarial trainer run with numpy's and torch's global generators seeded and then restored."""

    def __init__(self, trainer: Any, epochs: int, batch_size: int, seed: int) -> None:
        self.trainer, self.epochs, self.batch_size, self.seed = trainer, epochs, batch_size, seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        with torch.random.fork_rng(devices=[]), C.seeded_numpy(self.seed):
            torch.manual_seed(self.seed)
            self.trainer.fit(x, y, nb_epochs=self.epochs, batch_size=self.batch_size)

    def get_classifier(self) -> Any:
        return self.trainer.get_classifier()


def _art_baseline(kind: str, raw: Any, s: dict[str, Any], seed: int) -> _ARTRun:
    from art.attacks.evasion import ProjectedGradientDescent
    from art.defences.trainer import AdversarialTrainerMadryPGD, AdversarialTrainerTRADESPyTorch

    net = raw.model
    clf = ra.make_art_classifier(net, raw.input_shape, raw.nb_classes, raw.clip_values,
                                 optimizer=torch.optim.SGD(net.parameters(), lr=s["lr"], momentum=0.9))
    pgd = {"eps": s["pgd_eps"], "eps_step": s["pgd_alpha"], "max_iter": s["pgd_steps"]}
    if kind == "madry":
        trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=s["epochs"], batch_size=s["batch_size"], num_random_init=1,
                                             **pgd)
    else:
        attack = ProjectedGradientDescent(clf, num_random_init=1, verbose=False, **pgd)
        trainer = AdversarialTrainerTRADESPyTorch(clf, attack, beta=s["trades_beta"])
    return _ARTRun(trainer, s["epochs"], s["batch_size"], seed)


def train_all(args: argparse.Namespace, data: ra.DatasetSplits, s: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Train (or load) every named model; return ART classifiers by name."""
    models = {}
    for name in names:
        spec = VARIANTS[name]
        key = ["er-script", name, sorted(s.items()), args.seed, len(data.x_train)]
        if spec in ("ce", "madry", "trades"):
            if spec == "ce":
                def make(raw):
                    return ra.CETrainer(raw, epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"],
                                        seed=args.seed, verbose=not args.quiet)
            else:
                def make(raw, spec=spec):
                    return _art_baseline(spec, raw, s, args.seed)
            models[name] = C.train_cached(args, data, name, key, make, epochs=s["epochs"])
        else:
            opts = dict(spec)

            def make(raw, opts=opts):
                return ra.ERTrainer(raw, lam=s["lam"], pgd_eps=s["pgd_eps"], pgd_alpha=s["pgd_alpha"],
                                    pgd_steps=s["pgd_steps"], critic_clip=s["critic_clip"],
                                    encoder_lr=s["encoder_lr"], encoder_step=s["encoder_step"],
                                    trades_beta=s["trades_beta"], epochs=s["epochs"], batch_size=s["batch_size"],
                                    lr=s["lr"], seed=args.seed, verbose=not args.quiet, **opts)

            vae = opts.get("regularizer") == "vae"
            models[name] = C.train_cached(args, data, name, key, make, epochs=s["epochs"],
                                          net=lambda d, v=vae: _er_net(d, s["k"], args.model, v))
    return models
