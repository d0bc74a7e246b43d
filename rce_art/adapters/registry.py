"""The paper's attack set, built by name on ART, Foolbox or torchattacks.

Defaults follow Pang et al. (2018), Sections 2.3/4.3 and Appendix B: FGSM on the
predicted label; BIM and ILCM with 10 steps of eps/10 (ILCM targets the least-likely
class); JSMA with at most 100 iterations toward a random (seeded) target; C&W-L2 with
binary search on c and kappa = 0; C&W-hc with kappa = 10; PGD; RAND (uniform noise).
Every constructor argument can be overridden with the toolkit's own parameter name.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rce_art._tensors import as_input_tensor, least_likely_labels, predicted_labels
from rce_art.attacks.noise import UniformNoise
from rce_art.models.estimator import Preprocessed, resolve_model
from rce_art.settings import cw_settings

__all__ = ["AVAILABLE", "BACKENDS", "PAPER_ATTACKS", "PaperAttack", "build_attack", "seeded_global_rngs"]

PAPER_ATTACKS = ("fgsm", "bim", "ilcm", "jsma", "cw", "cw-hc", "pgd", "rand")
"""Names of the paper's attack set (Pang et al. 2018, Sec. 4.3 and App. B), for [`build_attack`][]."""
BACKENDS = ("art", "foolbox", "torchattacks")
"""Toolkits [`build_attack`][] builds attacks on."""
AVAILABLE = {
    "art": set(PAPER_ATTACKS),
    "foolbox": set(PAPER_ATTACKS) - {"jsma"},  # Foolbox 3 has no JSMA
    "torchattacks": set(PAPER_ATTACKS),  # its C&W has a fixed c (no binary search)
}
"""The attacks each backend has (Foolbox 3 has no JSMA; torchattacks' C&W has a fixed ``c``)."""
_TARGETED = {"ilcm": "least-likely", "jsma": "random"}


@dataclass
class PaperAttack:
    """An attack of the paper's set, ready to run: ``generate(x)`` crafts from the predicted labels.

    Attributes:
        name: Paper name (``"fgsm"``, ``"bim"``, ...).
        backend: Toolkit it runs on (``"rce-art"`` for RAND).
        params: The toolkit constructor arguments actually used.
        adapter: The adapter around the toolkit's attack object.
        model: The attacked computation as one torch module: the estimator's preprocessing, then its model.
        clip_values: Pixel range.
        targets: ``"least-likely"``, ``"random"`` or ``None`` (untargeted).
        seed: Seed of random targets and of the toolkit's random start (PGD). Each [`generate`][] call runs
            with torch's and numpy's global generators seeded from it and restores their state after, so
            results are reproducible and the caller's random streams are untouched.
        seconds_per_example: Wall time per example of the last [`generate`][] call.
    """

    name: str
    backend: str
    params: dict[str, Any]
    adapter: Any
    model: torch.nn.Module
    clip_values: tuple[float, float]
    targets: str | None = None
    seed: int = 0
    seconds_per_example: float = field(default=float("nan"))

    def target_labels(self, x: Any) -> torch.Tensor | None:
        """Targets for a targeted attack: least-likely class (ILCM) or a seeded random other class (JSMA)."""
        if self.targets is None:
            return None
        device = next(self.model.parameters()).device
        xt = as_input_tensor(x, device, self.clip_values)
        if self.targets == "least-likely":
            return least_likely_labels(self.model, xt)
        pred = predicted_labels(self.model, xt)
        n_classes = int(_n_classes(self.model, xt))
        g = torch.Generator().manual_seed(self.seed)
        shift = torch.randint(1, n_classes, (xt.shape[0],), generator=g).to(device)
        return (pred + shift) % n_classes

    def generate(self, x: Any) -> Any:
        """Adversarial inputs for ``x`` (same type, shape, dtype and device), timed."""
        t0 = time.perf_counter()
        p = next(self.model.parameters(), None)
        with seeded_global_rngs(self.seed, None if p is None else p.device):
            out = self.adapter.generate(x, self.target_labels(x))
        self.seconds_per_example = (time.perf_counter() - t0) / max(len(x), 1)
        return out

    def describe(self) -> str:
        """``NAME[backend](param=value, ...)`` for printing next to results."""
        shown = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.params.items()}
        return f"{self.name.upper()}[{self.backend}]({', '.join(f'{k}={v}' for k, v in shown.items())})"


def build_attack(
    name: str,
    classifier: Any,
    backend: str = "art",
    *,
    eps: float = 0.1,
    paper: bool = False,
    seed: int = 0,
    batch_size: int = 256,
    **overrides: Any,
) -> PaperAttack:
    """Build one of [`PAPER_ATTACKS`][] on a backend.

    Args:
        name: Attack name, one of [`PAPER_ATTACKS`][].
        classifier: ART ``PyTorchClassifier`` (ordinary logits, with ``clip_values``).
        backend: ``"art"``, ``"foolbox"`` or ``"torchattacks"``.
        eps: L-inf budget of FGSM, BIM, ILCM, PGD and RAND, in pixel units.
        paper: Use the paper's C&W settings (9 x 10,000 iterations) instead of quick ones.
        seed: Seed of JSMA's random targets, PGD's start and RAND's noise.
        batch_size: Batch size where the toolkit takes one.
        **overrides: Toolkit constructor arguments by the toolkit's own names (e.g.
            ``max_iter=20`` for ART's BIM, ``steps=20`` for Foolbox's or torchattacks').

    Returns:
        [`PaperAttack`][].

    Raises:
        ValueError: On an unknown name or backend, or an attack the backend does not have.
    """
    if name not in PAPER_ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of {PAPER_ATTACKS}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if name not in AVAILABLE[backend]:
        raise ValueError(f"{name!r} is not available on {backend!r}; backends with it: "
                         f"{[b for b in BACKENDS if name in AVAILABLE[b]]}")
    view = resolve_model(classifier)
    if view.clip_values is None:
        raise ValueError("the classifier needs clip_values; build it with rce_art.make_art_classifier(...)")
    clip = view.clip_values
    model = Preprocessed(view) if view.has_preprocessing else view.model
    common = {"name": name, "model": model, "clip_values": clip, "targets": _TARGETED.get(name), "seed": seed}
    if name == "rand":
        noise = UniformNoise(eps, clip, seed)
        return PaperAttack(backend="rce-art", params={"eps": eps, "seed": seed}, adapter=noise, **common)
    n_features = int(np.prod(view.input_shape)) if view.input_shape else 784
    builder = {"art": _art, "foolbox": _foolbox, "torchattacks": _torchattacks}[backend]
    params, adapter = builder(name, classifier, model, clip, eps, paper, seed, batch_size, n_features, overrides)
    return PaperAttack(backend=backend, params=params, adapter=adapter, **common)


def _art(name, classifier, model, clip, eps, paper, seed, batch_size, n_features, overrides):
    from art.attacks import evasion as ae

    from rce_art.adapters.art_attack import ARTAttack

    cw = cw_settings(paper)
    table = {
        "fgsm": (ae.FastGradientMethod, {"eps": eps, "batch_size": batch_size}),
        "bim": (ae.BasicIterativeMethod, {"eps": eps, "eps_step": eps / 10, "max_iter": 10, "batch_size": batch_size}),
        "ilcm": (ae.BasicIterativeMethod,
                 {"eps": eps, "eps_step": eps / 10, "max_iter": 10, "targeted": True, "batch_size": batch_size}),
        "jsma": (ae.SaliencyMapMethod, {"theta": clip[1] - clip[0], "gamma": min(1.0, 100 / n_features), "batch_size": batch_size}),
        "cw": (ae.CarliniL2Method, {"confidence": 0.0, **cw, "batch_size": batch_size}),
        "cw-hc": (ae.CarliniL2Method, {"confidence": 10.0, **cw, "batch_size": batch_size}),
        "pgd": (ae.ProjectedGradientDescent,
                {"eps": eps, "eps_step": eps / 4, "max_iter": 20, "num_random_init": 1, "batch_size": batch_size}),
    }
    cls, params = table[name]
    params = {**params, **overrides}
    if name in ("bim", "ilcm", "jsma", "cw", "cw-hc", "pgd"):
        params.setdefault("verbose", False)
    return params, ARTAttack(cls(classifier, **params))


def _foolbox(name, classifier, model, clip, eps, paper, seed, batch_size, n_features, overrides):
    import foolbox as fb

    from rce_art.adapters.foolbox_attack import FoolboxAttack

    cw = cw_settings(paper)
    fb_cw = {"binary_search_steps": cw["binary_search_steps"], "steps": cw["max_iter"], "stepsize": cw["learning_rate"],
             "initial_const": cw["initial_const"], "abort_early": True}
    table = {
        "fgsm": (fb.attacks.LinfFastGradientAttack, {"random_start": False}, eps),
        "bim": (fb.attacks.LinfBasicIterativeAttack, {"abs_stepsize": eps / 10, "steps": 10}, eps),
        "ilcm": (fb.attacks.LinfBasicIterativeAttack, {"abs_stepsize": eps / 10, "steps": 10}, eps),
        "cw": (fb.attacks.L2CarliniWagnerAttack, {**fb_cw, "confidence": 0.0}, None),
        "cw-hc": (fb.attacks.L2CarliniWagnerAttack, {**fb_cw, "confidence": 10.0}, None),
        "pgd": (fb.attacks.LinfPGD, {"abs_stepsize": eps / 4, "steps": 20, "random_start": True}, eps),
    }
    cls, params, epsilon = table[name]
    params = {**params, **overrides}
    return params, FoolboxAttack(cls(**params), model, clip, epsilon=epsilon, targeted=name == "ilcm")


def _torchattacks(name, classifier, model, clip, eps, paper, seed, batch_size, n_features, overrides):
    import torchattacks as ta

    from rce_art.adapters.torchattacks_attack import TorchattacksAttack

    cw = cw_settings(paper)
    scale = clip[1] - clip[0]  # torchattacks budgets are in [0, 1] units
    e = eps / scale
    table = {
        "fgsm": (ta.FGSM, {"eps": e}),
        "bim": (ta.BIM, {"eps": e, "alpha": e / 10, "steps": 10}),
        "ilcm": (ta.BIM, {"eps": e, "alpha": e / 10, "steps": 10}),
        "jsma": (ta.JSMA, {"theta": 1.0, "gamma": min(1.0, 100 / n_features)}),
        "cw": (ta.CW, {"c": 1.0, "kappa": 0.0, "steps": cw["max_iter"], "lr": cw["learning_rate"]}),
        "cw-hc": (ta.CW, {"c": 1.0, "kappa": 10.0, "steps": cw["max_iter"], "lr": cw["learning_rate"]}),
        "pgd": (ta.PGD, {"eps": e, "alpha": e / 4, "steps": 20, "random_start": True}),
    }
    cls, params = table[name]
    params = {**params, **overrides}
    attack = cls(model, **params)
    if name in _TARGETED:
        attack.set_mode_targeted_by_label(quiet=True)
    return params, TorchattacksAttack(attack, clip)


@contextlib.contextmanager
def seeded_global_rngs(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with torch's and numpy's global generators seeded from ``seed``, restoring both after.

    The toolkits draw random starts from the global generators (ART from numpy's, torchattacks reseeds torch's);
    this makes their runs reproducible without changing the caller's random streams.
    """
    state = np.random.get_state()
    devices = [device.index or 0] if device is not None and device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


def _n_classes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Number of classes of ``model`` (width of its logits on one input)."""
    with torch.no_grad():
        return int(model(x[:1]).shape[1])
