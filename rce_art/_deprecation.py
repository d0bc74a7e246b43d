"""Renamed and moved public names keep working for one minor version, with a ``DeprecationWarning`` (private)."""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["REMOVED_IN", "alias_module", "moved_attribute"]

#: The version in which the deprecated names below stop working.
REMOVED_IN = "0.8"


def alias_module(old: str, new: str) -> None:
    """Make the module ``old`` (being imported) the module ``new``, warning that it was renamed."""
    warnings.warn(f"the module {old} was renamed {new} (the old name is removed in rce-art {REMOVED_IN})",
                  DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)


def moved_attribute(module: str, name: str, moved: Mapping[str, str]) -> Any:
    """The object a deprecated ``module.name`` now names, with a warning; ``AttributeError`` for other names.

    Args:
        module: The module whose attribute is looked up (its ``__name__``).
        name: The attribute.
        moved: ``{old name: "new.module:new_name"}``.
    """
    if name not in moved:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    target_module, _, target = moved[name].partition(":")
    warnings.warn(f"{module}.{name} is deprecated (removed in rce-art {REMOVED_IN}): use {target_module}.{target}",
                  DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(target_module), target)
