"""Options, data, model training and caching shared by the reproduction scripts."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rce_art as ra
from rce_art.settings import PAPER_STEPS, SGD, cw_wb_settings

DATASETS = ("digits", "mnist-5k", "fashion-mnist", "mnist", "cifar10")
MODELS = ("small", "resnet32", "resnet56")
#: Default L-inf budget (pixels in [-0.5, 0.5]) per dataset; 8x8 digits need a larger one.
DEFAULT_EPS = {"digits": 0.2, "mnist-5k": 0.1, "fashion-mnist": 0.1, "mnist": 0.1, "cifar10": 0.03}


#: Training variants by name: trainer class and its extra arguments.
TRAINERS = {
    "CE": (ra.CETrainer, {}),
    "RCE": (ra.RCETrainer, {}),
    "Siamese+RVL": (ra.PDMTrainer, {"classification": "ce"}),
    "PDM": (ra.PDMTrainer, {"classification": "rce"}),
}


def common_parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with the options every reproduction script shares."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=DATASETS, default="digits")
    p.add_argument("--data-dir", default=None, help="folder with the dataset's original files")
    p.add_argument("--model", choices=MODELS, default="small")
    p.add_argument("--backend", choices=("auto", "art", "foolbox", "torchattacks"), default="auto",
                   help="toolkit of the attacks; auto = ART, with Foolbox's C&W (ART's is ~40x slower)")
    p.add_argument("--n-examples", type=int, default=None, help="test inputs to attack (paper: 1000)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: per dataset/model)")
    p.add_argument("--eps", type=float, default=None, help="L-inf budget (default: per dataset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs"), help="folder for results, figures and cached models")
    p.add_argument("--paper", action="store_true", help="paper settings (training length, C&W 9 x 10,000 iterations)")
    p.add_argument("--no-cache", action="store_true", help="retrain models even if cached in --out/models")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--tsne-examples", type=int, default=1000, help="test inputs in t-SNE figures and cluster indices")
    return p


ATTACK_BATCH = 256
"""Batch size of the registry's attacks: the granularity of example shards, so shards run the same batches."""


def add_shard_options(parser: argparse.ArgumentParser) -> None:
    """``--shard i/n`` and ``--merge FOLDER...``: the offline form of sharded evaluation."""
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="attack only shard I of N (0-based) and write its per-example results as JSON to --out "
                             "(for jobs that cannot talk to each other; under torchrun the processes shard by rank)")
    parser.add_argument("--merge", nargs="+", type=Path, default=None, metavar="FOLDER",
                        help="merge the results folder(s) of the --shard jobs of one run and print the tables")


def setup_sharding(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[int, int] | None:
    """Join torchrun's process group if launched by it; parse ``--shard``. Returns ``(i, n)`` or ``None``."""
    ra.distributed.init_distributed()
    if args.shard is None:
        return None
    if ra.distributed.is_distributed():
        parser.error("--shard is the offline form: under torchrun the processes shard by rank; drop --shard")
    try:
        return ra.distributed.parse_shard(args.shard)
    except ValueError as e:
        parser.error(str(e))


def shard_note(shard: tuple[int, int] | None) -> str:
    """What part of the examples this process handles, for the settings line."""
    if shard is not None:
        return f" shard={shard[0]}/{shard[1]} (offline)"
    world = ra.distributed.get_world_size()
    return f" processes={world} (torchrun, examples sharded by rank)" if world > 1 else ""


@contextlib.contextmanager
def main_process_output():
    """Only rank 0 prints under torchrun (the others' stdout goes to /dev/null)."""
    if ra.distributed.is_main_process():
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


@contextlib.contextmanager
def seeded_numpy(seed: int):
    """numpy's global generator seeded for the block and restored after: ART draws random starts and shuffles
    from it, so runs are reproducible and the caller's stream is untouched."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures are written to files), with a clear error."""
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover
        raise ImportError("figures need matplotlib: pip install 'rce-art[plot]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def threshold_unused() -> Any:
    """Silence ``CalibrationWarning`` for a detector whose threshold the script does not use (AUCs only), or whose
    threshold is the attacker's own (a substitute calibrated on the data the attacker has)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ra.CalibrationWarning)
        yield


def grid_axes(plt: Any, n: int, panel: tuple[float, float], ncols: int = 3) -> tuple[Any, list[Any]]:
    """A figure with ``n`` panels of size ``panel`` (inches) in a grid of at most ``ncols`` columns, readable at a
    page's width (a one-row strip of many panels is not); unused cells are hidden. Returns ``(fig, axes)``."""
    cols = max(1, min(ncols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def default_epochs(args: argparse.Namespace, n_train: int) -> int:
    """Epochs: ``--epochs``, else the paper's step count (``--paper``), else quick per-dataset defaults."""
    if args.epochs is not None:
        return args.epochs
    if args.paper:
        return max(1, round(PAPER_STEPS[args.dataset] * SGD["batch_size"] / n_train))
    quick = {"digits": 20, "mnist-5k": 20, "fashion-mnist": 3, "mnist": 3, "cifar10": 10}[args.dataset]
    return quick if args.model == "small" else max(quick, 5)


def load_data(args: argparse.Namespace) -> ra.DatasetSplits:
    """The dataset named by ``--dataset`` in the paper's pixel range."""
    return ra.load_dataset(args.dataset, data_dir=args.data_dir, pixel_range="paper", seed=args.seed)


def build_net(model: str, data: ra.DatasetSplits, dropout: float = 0.0) -> torch.nn.Module:
    """A fresh network for ``--model`` on ``data`` (``dropout`` before the output layer: small CNN only)."""
    c = data.input_shape[0]
    if model == "small":
        # width 16 on 28x28 / 32x32 inputs keeps 1,000-example C&W runs within minutes on 2 CPU cores
        return ra.SmallCNN(in_channels=c, num_classes=data.nb_classes, width=32 if data.input_shape[-1] < 16 else 16,
                           dropout=dropout)
    if dropout:
        raise ValueError("dropout is available for --model small only")
    return (ra.resnet32 if model == "resnet32" else ra.resnet56)(in_channels=c, num_classes=data.nb_classes)


def train_models(
    args: argparse.Namespace, data: ra.DatasetSplits, model: str | None = None, objectives: tuple[str, ...] = ("CE", "RCE"),
    dropout: float = 0.0,
) -> dict[str, Any]:
    """Train (or load from ``--out/models``) one network per objective; return ART classifiers by objective.

    Cached weights are a weights-only ``torch.save`` of the state dict, keyed by every setting that
    changes them, and are loaded with ``weights_only=True``.
    """
    model = model or args.model
    epochs = default_epochs(args, len(data.x_train))
    batch_size = SGD["batch_size"] if data.name != "digits" else 64
    out: dict[str, Any] = {}
    for objective in objectives:
        trainer_cls, extra = TRAINERS[objective]
        key = [objective, epochs, args.seed, len(data.x_train), SGD["lr"], batch_size, "w16"] + ([dropout] if dropout else [])
        out[objective] = train_cached(
            args, data, objective, key, lambda clf, cls=trainer_cls, kw=extra: cls(
                clf, epochs=epochs, batch_size=batch_size, seed=args.seed, verbose=not args.quiet, **kw),
            model=model, dropout=dropout, epochs=epochs)
    return out


def train_cached(
    args: argparse.Namespace, data: ra.DatasetSplits, name: str, key: list, make_trainer: Any, *, model: str | None = None,
    dropout: float = 0.0, epochs: int | None = None, net: Any = None,
) -> Any:
    """Train one network with ``make_trainer(raw_classifier)`` (or load it from ``--out/models``); return its
    ART classifier. ``key`` lists every setting that changes the weights besides the dataset and model;
    ``net(data)`` builds the network (default: :func:`build_net` for ``--model``)."""
    model = model or args.model
    digest = hashlib.sha1(json.dumps([data.name, model, *key]).encode()).hexdigest()[:10]
    slug = name.replace("+", "-").replace(" ", "_").replace("=", "").replace(",", "-").lower()
    path = args.out / "models" / f"{data.name}-{model}-{slug}-{digest}.pt"
    torch.manual_seed(args.seed)
    net = build_net(model, data, dropout) if net is None else net(data)
    raw = ra.make_art_classifier(net, data.input_shape, data.nb_classes, data.clip_values)
    trainer = make_trainer(raw)
    if path.exists() and not args.no_cache:
        net.load_state_dict(torch.load(path, weights_only=True))
        net.eval()
        print(f"{name}: loaded {path}")
    else:
        t0 = time.perf_counter()
        trainer.fit(data.x_train, data.y_train)  # DistributedDataParallel under torchrun
        if ra.distributed.is_main_process():  # rank 0 alone writes; every rank holds the same weights
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(net.state_dict(), path)
        ra.distributed.barrier()
        print(f"{name}: trained {model} for {epochs or trainer.epochs} epochs in {time.perf_counter() - t0:.0f}s")
    return trainer.get_classifier()


def attack_subset(data: ra.DatasetSplits, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of ``n`` test inputs (all if ``n`` is None)."""
    idx = np.random.default_rng(seed).permutation(len(data.x_test))[: n or len(data.x_test)]
    return data.x_test[idx], data.y_test[idx]


def white_box_split(data: ra.DatasetSplits, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """``(x, y, x_calibration, targets)``: the ``n`` inputs of :func:`attack_subset`, up to 1,000 other
    test inputs (clean, unseen in training) to calibrate thresholds, and seeded random other-class targets."""
    perm = np.random.default_rng(seed).permutation(len(data.x_test))
    x, y = data.x_test[perm[:n]], data.y_test[perm[:n]]
    targets = (y + np.random.default_rng(seed).integers(1, data.nb_classes, size=y.shape)) % data.nb_classes
    return x, y, data.x_test[perm[n:][:1000]], targets


def fit_detector(classifier: Any, data: ra.DatasetSplits, x_calibration: np.ndarray | None, seed: int) -> ra.KDensityDetector:
    """K-density detector on the training set (default bandwidth), threshold calibrated on ``x_calibration``."""
    return ra.KDensityDetector(classifier, seed=seed).fit(data.x_train, data.y_train, x_calibration=x_calibration)


def accuracy(classifier: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of an ART classifier."""
    return float((classifier.predict(x, batch_size=512).argmax(1) == y).mean())


def build_paper_attack(name: str, classifier: Any, args: argparse.Namespace, eps: float) -> Any:
    """``rce_art.build_attack`` with the script's backend choice (``auto``: Foolbox for C&W when installed, else ART)."""
    import importlib.util

    from rce_art.adapters import AVAILABLE, build_attack

    backend = args.backend
    if backend == "auto":
        backend = "foolbox" if name in ("cw", "cw-hc") and importlib.util.find_spec("foolbox") else "art"
    if name not in AVAILABLE[backend]:
        print(f"note: {name} is not available on {backend}; using ART's")
        backend = "art"
    return build_attack(name, classifier, backend, eps=eps, paper=args.paper, seed=args.seed)


def cw_wb_params(args: argparse.Namespace) -> dict:
    """C&W-wb settings of ``rce_art.settings.cw_wb_settings``: quick (``--max-iter`` steps per round) or ``--paper``."""
    return cw_wb_settings(args.paper, getattr(args, "max_iter", None))
