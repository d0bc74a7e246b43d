"""Renamed and moved public names keep working for one minor version, with a ``DeprecationWarning`` (private)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

__all__ = ["REMOVED_IN", "RenamedPackage", "alias_module", "install_renamed_package", "moved_attribute"]

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


class RenamedPackage(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """An import hook: ``old`` and every ``old.sub`` module import as ``new`` / ``new.sub`` (the same module
    objects, so classes stay identical), with a ``DeprecationWarning``.

    Args:
        old: The package's former name, e.g. ``"rce_art.robustness"``.
        new: Its name now, e.g. ``"rce_art.report"``.
        renamed: Submodules renamed inside the package, ``{old sub: new sub}`` (e.g. ``{"report": "model"}``).
    """

    def __init__(self, old: str, new: str, renamed: Mapping[str, str] | None = None) -> None:
        self.old, self.new, self.renamed = old, new, dict(renamed or {})

    def target(self, fullname: str) -> str:
        """The module that ``fullname`` (``old`` or below) names now."""
        parts = fullname[len(self.old):].lstrip(".").split(".") if fullname != self.old else []
        if parts:
            parts[0] = self.renamed.get(parts[0], parts[0])
        return ".".join([self.new, *parts])

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.old and not fullname.startswith(self.old + "."):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = self.target(spec.name)
        warnings.warn(f"the module {spec.name} was renamed {new} (the old name is removed in rce-art {REMOVED_IN})",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module is the renamed one, already imported."""


def install_renamed_package(old: str, new: str, renamed: Mapping[str, str] | None = None) -> None:
    """Register a [`RenamedPackage`][] hook once."""
    if not any(isinstance(f, RenamedPackage) and f.old == old for f in sys.meta_path):
        sys.meta_path.insert(0, RenamedPackage(old, new, renamed))
