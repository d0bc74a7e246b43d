"""Deprecated module name (removed in rce-art 0.8): renamed `rce_art.evaluation.tables`."""

from rce_art._deprecation import alias_module

alias_module(__name__, "rce_art.evaluation.tables")
