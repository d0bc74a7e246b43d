"""Python blocks of docs/api.md run as written."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_detector_family_drop_in_runs(tmp_path, monkeypatch, capsys):
    text = (DOCS / "api.md").read_text()
    section = text[text.index("## The detector family") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/api.md detector family", "exec"), {})
    aucs = {k: float(v) for k, v in re.findall(r"'(\w+)': ([0-9.]+)", capsys.readouterr().out)}
    assert set(aucs) == {"lid", "mahalanobis", "bu"} and all(0.5 < a <= 1 for a in aucs.values())
