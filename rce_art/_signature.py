"""Parameters are the signature (as in scikit-learn): derived from ``__init__``, never re-declared by hand (private)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["SignatureParams", "init_parameters", "with_signature"]


def init_parameters(cls: type) -> tuple[inspect.Parameter, ...]:
    """The named parameters of ``cls.__init__`` after ``self`` (``*args`` / ``**kwargs`` left out), in order."""
    sig = inspect.signature(cls.__init__)  # type: ignore[misc]  # the class's own constructor
    return tuple(p for name, p in sig.parameters.items()
                 if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


class SignatureParams:
    """Mixin: ``PARAMS`` (the constructor's parameter names), ``params()`` and ``__repr__`` from ``__init__``.

    A subclass stores each constructor argument under its own name (possibly normalised, e.g. ``float(eps)``);
    nothing else is declared.
    """

    PARAMS: tuple[str, ...] = ()
    #: Parameters left out of ``repr`` (e.g. a classifier, whose own repr is pages long).
    REPR_EXCLUDE: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.PARAMS = tuple(p.name for p in init_parameters(cls))

    def params(self) -> dict[str, Any]:
        """The constructor arguments, e.g. to build a variant: ``type(a)(**{**a.params(), "steps": 50})``."""
        return {k: getattr(self, k) for k in self.PARAMS}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params().items() if k not in self.REPR_EXCLUDE)
        return f"{type(self).__name__}({shown})"


def with_signature(init: Callable[..., None], leading: list[inspect.Parameter], core: type,
                   trailing: list[inspect.Parameter]) -> inspect.Signature:
    """The signature ``(self, *leading, *core's parameters, *trailing)`` for a form built on ``core``.

    A trailing parameter that ``core`` already has (e.g. ``targeted``) keeps the core's place and default.
    """
    names = {p.name for p in init_parameters(core)}
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *leading,
              *(p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in init_parameters(core)),
              *(p for p in trailing if p.name not in names)]
    return inspect.Signature(params, return_annotation=inspect.signature(init).return_annotation)
