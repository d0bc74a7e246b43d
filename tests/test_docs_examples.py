"""Every Python block of the documentation's guides runs as written (on digits), so the docs cannot rot.

The blocks of one page run in order in one namespace, in a temporary folder. Pages whose blocks take long
would be marked slow here; none does today.
"""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in [DOCS / "index.md", *sorted((DOCS / "howto").glob("*.md"))])


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page, tmp_path, monkeypatch, capsys):
    blocks = python_blocks((DOCS / page).read_text())
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/{page} block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
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
        if inspect.ismodule(getattr(ra, name)):  # a submodule exported as such: its own page
            assert f"::: rce_art.{name}" in pages.get(name, ""), name
            continue
        owners = [pkg for pkg in pages if pkg != "index"
                  and name in getattr(importlib.import_module(f"rce_art.{pkg}"), "__all__", ())]
        assert owners, f"{name} is exported by no documented package"
        assert any(f"::: rce_art.{pkg}" in pages[pkg] for pkg in owners), name
    assert "api.md" not in {p.name for p in DOCS.glob("*.md")}  # no hand-copied signatures
