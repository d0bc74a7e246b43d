"""Exceptions raised by rce-art."""

from __future__ import annotations

__all__ = ["NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a fitted-state method is called before ``fit``.

    Subclasses both :class:`ValueError` and :class:`AttributeError`, like
    scikit-learn's exception of the same name, so either can be caught.
    """
