"""One entry point to load any detector file: its format tag says which class wrote it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rce_art.detectors.base import ScoreDetector
from rce_art.detectors.persistence import read_format

__all__ = ["load_detector"]


def _detector_classes(base: type[ScoreDetector] = ScoreDetector) -> list[type[ScoreDetector]]:
    """Every subclass of ``base`` (the package imports them all), so a new detector is found without a list."""
    return [c for sub in base.__subclasses__() for c in (sub, *_detector_classes(sub))]


def load_detector(path: str | Path, classifier: Any, strict: bool = True) -> ScoreDetector:
    """Load a detector saved by ``save`` without knowing its class: the file's format tag names it.

    Args:
        path: A file written by a detector's ``save``.
        classifier: The model it was fitted on (checked against the fingerprint in the file).
        strict: Refuse (``True``) or warn (``False``) when the classifier's weights differ from the fitted model's.

    Returns:
        The detector, of the class that wrote the file.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a detector file, was written by another version, or fitted on another model.
    """
    tag = read_format(path)
    by_tag = {c.format_tag: c for c in _detector_classes() if "format_tag" in vars(c)}
    if tag in by_tag:
        return by_tag[tag].load(path, classifier, strict=strict)
    names = {t.split("/")[0]: c for t, c in by_tag.items()}
    if tag.split("/")[0] in names:  # the class exists in another format version: its own load explains
        return names[tag.split("/")[0]].load(path, classifier, strict=strict)
    raise ValueError(f"{path} holds a detector of unknown format {tag!r}; this rce-art reads {sorted(by_tag)}")
