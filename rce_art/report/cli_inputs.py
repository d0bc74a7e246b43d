"""The ``rce-art`` command's inputs: a model from ``package.module:factory`` and its weights, a ``.npz`` of arrays,
and the pixel range, preprocessing and operating points given as text. Each mistake is a [`UsageError`][] naming
the fix (printed as one line)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["UsageError", "build_classifier", "clip_range", "load_npz", "preprocessing_pair", "rates"]


class UsageError(ValueError):
    """A command-line input that cannot be used (printed as one line, exit status 2)."""


def _pair(text: str, name: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{name} must be two numbers separated by a comma (e.g. 0,1), got {text!r}") from None
    if not (np.isfinite(a) and np.isfinite(b)):
        raise UsageError(f"{name} must be two finite numbers, got {text!r}")
    return a, b


def clip_range(text: str) -> tuple[float, float]:
    """``--clip LO,HI``: two finite numbers with ``LO < HI``.

    Args:
        text: The option's value.

    Raises:
        UsageError: Otherwise.
    """
    lo, hi = _pair(text, "--clip")
    if not lo < hi:
        raise UsageError(f"--clip must be LO,HI with LO < HI (the pixel range), got {text!r}")
    return lo, hi


def preprocessing_pair(text: str | None) -> tuple[float, float] | None:
    """``--preprocessing MEAN,STD``: two finite numbers with ``STD > 0`` (``None``: no preprocessing).

    Args:
        text: The option's value, or ``None``.

    Raises:
        UsageError: Otherwise.
    """
    if text is None:
        return None
    mean, std = _pair(text, "--preprocessing")
    if not std > 0:
        raise UsageError(f"--preprocessing must be MEAN,STD with STD > 0, got {text!r}")
    return mean, std


def rates(text: str, name: str) -> tuple[float, ...]:
    """Comma-separated false-positive rates (checked further by ``evaluate``); ``""``: none.

    Args:
        text: The option's value.
        name: The option's name, for the message.

    Raises:
        UsageError: If a rate is not a number.
    """
    try:
        return tuple(float(f) for f in text.split(",") if f.strip())
    except ValueError:
        raise UsageError(f"{name} must be false-positive rates separated by commas (e.g. 0.05,0.5), got {text!r}"
                         ) from None


def _read_weights(path: Path) -> Any:
    import torch
    from packaging.version import Version

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if Version(torch.__version__.split("+")[0]) < Version("2.6"):
        raise UsageError(f"--weights {path}: torch {torch.__version__} reads state dicts with a weights_only loader "
                         "that is known to be unsafe (CVE-2025-32434); save the weights as safetensors "
                         "(safetensors.torch.save_file(model.state_dict(), 'net.safetensors')) or upgrade to torch "
                         ">= 2.6")
    return torch.load(path, map_location="cpu", weights_only=True)


def build_classifier(spec: str, weights: str | None, input_shape: tuple[int, ...], clip: tuple[float, float],
                     preprocessing: tuple[float, float] | None) -> Any:
    """An ART classifier from ``package.module:factory`` (a callable returning an ``nn.Module``) and a weights file
    (safetensors, or on torch >= 2.6 a torch state dict read with ``weights_only=True``: never a pickle).

    Args:
        spec: ``package.module:factory``, imported from the current folder or the path.
        weights: The weights file, or ``None`` (the factory's own weights).
        input_shape: Shape of one input, e.g. ``(1, 28, 28)``.
        clip: The pixel range ``(lo, hi)``.
        preprocessing: ``(mean, std)`` applied before the model (ART preprocessing), or ``None``.

    Raises:
        UsageError: If the module does not import, the factory is missing or raises, the weights cannot be read
            or do not fit, or the model cannot run on the inputs' shape.
    """
    import torch

    from rce_art.models.estimator import make_art_classifier

    if ":" not in spec:
        raise UsageError(f"--model must be package.module:factory, got {spec!r}")
    mod_name, fn_name = spec.split(":", 1)
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 (any import failure of the user's module is reported the same way)
        raise UsageError(f"cannot import {mod_name!r} for --model ({type(e).__name__}: {e}); check the module path "
                         "and that it imports on its own") from None
    finally:
        sys.path.pop(0)
    factory = getattr(module, fn_name, None)
    if not callable(factory):
        raise UsageError(f"{mod_name!r} has no callable {fn_name!r} (the factory returning your nn.Module)")
    try:
        net = factory()
    except Exception as e:  # noqa: BLE001 (the user's factory: any failure is reported the same way)
        raise UsageError(f"{spec} raised {type(e).__name__}: {' '.join(str(e).split())[:200]} (the factory must "
                         "return your nn.Module when called without arguments)") from None
    if not isinstance(net, torch.nn.Module):
        raise UsageError(f"{spec} returned {type(net).__name__}, not a torch.nn.Module")
    if weights is not None:
        path = Path(weights)
        if not path.exists():
            raise UsageError(f"--weights file {path} does not exist")
        try:
            state = _read_weights(path)
        except UsageError:
            raise
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"cannot read --weights {path} as safetensors or a weights-only torch state dict "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError) as e:
            first = str(e).splitlines()
            raise UsageError(f"--weights do not fit the model from {spec}: {' '.join(first[:2])[:300]}") from None
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros((1, *input_shape)))
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"the model from {spec} cannot run on inputs of shape {tuple(input_shape)} from the data "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); check the data's shape (N, C, H, W)"
                         ) from None
    if out.ndim != 2:
        raise UsageError(f"the model returns shape {tuple(out.shape)} for one input; it must return logits (1, L)")
    kw = {} if preprocessing is None else {"preprocessing": preprocessing}
    return make_art_classifier(net, input_shape, int(out.shape[1]), clip, device_type="gpu", **kw)


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Arrays of a ``.npz`` file (``x`` NCHW float32 and ``y`` required; ``x_train``, ``y_train``,
    ``x_calibration`` optional), read without pickle.

    Args:
        path: The file.

    Raises:
        UsageError: If it does not exist, cannot be read as arrays, or lacks ``x`` or ``y``.
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"--data file {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"cannot read --data {p} as a .npz of arrays ({type(e).__name__}: {e})") from None
    for k in ("x", "y"):
        if k not in arrays:
            raise UsageError(f"--data {p} has no array {k!r} (it has {sorted(arrays)}); save it with "
                             "numpy.savez(path, x=inputs_NCHW_float32, y=labels)")
    return arrays
