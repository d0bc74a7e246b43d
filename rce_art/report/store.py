"""Deprecated module name (removed in rce-art 0.8): the results store is `rce_art.evaluation.store` (one store for
``rce_art.evaluate`` and the reproduction scripts)."""

from rce_art._deprecation import alias_module

alias_module(__name__, "rce_art.evaluation.store")
