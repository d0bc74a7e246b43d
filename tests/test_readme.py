"""The README's drop-in example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_drop_in_example_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    section = text[text.index("## Drop-in") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README drop-in", "exec"), {})
    out = capsys.readouterr().out
    flagged_adv, flagged_clean = (int(v) for v in re.findall(r"(\d+)%", out))
    assert flagged_adv > 50 and flagged_clean <= 15
    assert (tmp_path / "kdensity.safetensors").exists()


def test_readme_test_command_is_what_ci_runs():
    lines = (README.parent / ".ci" / "run").read_text().strip().splitlines()
    ci = next(line for line in lines if "pytest" in line and not line.startswith("#"))
    assert ci in README.read_text()
