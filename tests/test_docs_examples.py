"""Every Python block of the documentation's guides runs as written (on digits), so the docs cannot rot, and
prints what the page shows under it.

The blocks of one page run in order in one namespace, in a temporary folder. A block that prints is followed on
its page by a ```` ```text ```` block with its output: the test compares them (words exactly, numbers within
0.05 or 10%: thread counts change the last digits) and ``RCE_ART_UPDATE_DOCS=1 pytest tests/test_docs_examples.py``
writes the outputs of this run into the pages. Pages whose blocks take long would be marked slow here; none does.
"""

import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in [DOCS / "index.md", DOCS / "attacks.md",
                                                       *sorted((DOCS / "howto").glob("*.md"))])
BLOCK = re.compile(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```\n)?", re.S)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def python_blocks(text: str) -> list[str]:
    return [m.group(1) for m in BLOCK.finditer(text)]


def _same_output(got: str, shown: str) -> bool:
    """Words equal, numbers within 0.05 or 10% (relative). Lines of an optional toolkit that is not installed (the
    page skips it) are left out of the shown output."""
    import importlib.util

    if importlib.util.find_spec("torchattacks") is None:
        shown = "".join(line for line in shown.splitlines(keepends=True) if "torchattacks" not in line)
    if NUMBER.sub("#", got.strip()) != NUMBER.sub("#", shown.strip()):
        return False
    pairs = zip(map(float, NUMBER.findall(got)), map(float, NUMBER.findall(shown)))
    return all(abs(a - b) <= max(0.05, 0.1 * abs(b)) for a, b in pairs)


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page, tmp_path, monkeypatch, capsys):
    import torch

    text = (DOCS / page).read_text()
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    outputs = []
    with torch.random.fork_rng():  # the pages build models without a seed: one fixed draw, the caller's restored
        torch.manual_seed(0)
        for i, m in enumerate(BLOCK.finditer(text)):
            exec(compile(m.group(1), f"docs/{page} block {i + 1}", "exec"), namespace)
            outputs.append(capsys.readouterr().out)
    for i, (m, out) in enumerate(zip(BLOCK.finditer(text), outputs)):
        if not os.environ.get("RCE_ART_UPDATE_DOCS"):
            assert (m.group(2) is None) == (out == ""), f"docs/{page} block {i + 1}: its output is not shown"
            if out:
                assert _same_output(out, m.group(2)), f"docs/{page} block {i + 1} printed\n{out}"
    if os.environ.get("RCE_ART_UPDATE_DOCS"):
        it = iter(outputs)
        (DOCS / page).write_text(BLOCK.sub(lambda m: f"```python\n{m.group(1)}```\n" + (
            f"\n```text\n{o}```\n" if (o := next(it)) else ""), text))
    out = "".join(outputs)
    if page == "howto/detector.md":  # the drop-in detectors give sensible AUCs
        aucs = {k: float(v) for k, v in re.findall(r"'(\w+)': ([0-9.]+)", out)}
        assert set(aucs) == {"kd", "lid", "mahalanobis", "bu"} and all(0.5 < a <= 1 for a in aucs.values())


def test_every_guide_has_code():
    assert all(python_blocks((DOCS / p).read_text()) for p in PAGES if p.startswith("howto/"))


def test_every_public_name_has_a_generated_reference_page():
    import importlib
    import inspect

    import rce_art as ra

    pages = {p.stem: p.read_text() for p in (DOCS / "reference").glob("*.md")}
    for name in ra.__all__:
        if name == "__version__":
            continue
        try:
            obj = getattr(ra, name)
        except ImportError:  # a lazily imported form whose optional toolkit is not installed: a class, not a module
            obj = None
        if inspect.ismodule(obj):  # a submodule exported as such: its own page
            assert f"::: rce_art.{name}" in pages.get(name, ""), name
            continue
        owners = [pkg for pkg in pages if pkg != "index"
                  and name in getattr(importlib.import_module(f"rce_art.{pkg}"), "__all__", ())]
        assert owners, f"{name} is exported by no documented package"
        assert any(f"::: rce_art.{pkg}" in pages[pkg] for pkg in owners), name
    assert "api.md" not in {p.name for p in DOCS.glob("*.md")}  # no hand-copied signatures
