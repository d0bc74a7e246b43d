"""Exceptions raised by rce-art."""

from __future__ import annotations

__all__ = ["CalibrationWarning", "GradientMaskingWarning", "InvalidParameterError", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a fitted-state method is called before ``fit``.

    Subclasses both `ValueError` and `AttributeError`, like
    scikit-learn's exception of the same name, so either can be caught.
    """


class InvalidParameterError(ValueError, TypeError):
    """Raised when a parameter has the wrong type (e.g. ``2.5`` or ``True`` where an integer is needed).

    Subclasses both `ValueError` and `TypeError`, like scikit-learn's exception of the same name, so either can be
    caught; an integer out of range raises a plain `ValueError`.
    """


class CalibrationWarning(UserWarning):
    """Warned when a detector's threshold is calibrated on inputs that are not held out from the classifier.

    A threshold set on the classifier's own training inputs flags fewer of them than of unseen clean inputs (the
    model is more confident on data it was trained on), so the realised false-positive rate on new data exceeds
    the nominal ``fpr`` (measured on digits at a nominal 0.05: K-density 0.10, BU 0.13, Mahalanobis 0.115). Pass
    ``x_calibration`` (held-out clean inputs) to ``fit`` to silence it.
    """


class GradientMaskingWarning(UserWarning):
    """Warned when a gradient-free attack breaks inputs on which every gradient attack failed.

    Carlini et al. ("On Evaluating Adversarial Robustness", 2019) and Croce & Hein (2020, AutoAttack's checks): a
    score- or decision-based attack should never beat white-box gradient attacks; when it does, the gradients are
    masked (or the gradient attacks are broken), and robustness measured by gradient attacks alone is overstated.
    """
