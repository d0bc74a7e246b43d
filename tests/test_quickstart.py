import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quickstart_runs_end_to_end(tmp_path, capsys):
    records = _load("quickstart").main(["--epochs", "2", "--n-examples", "60", "--quiet", "--out", str(tmp_path)])
    assert {(r["attack"], r["objective"]) for r in records} == {(a, o) for a in ("FGSM", "BIM") for o in ("CE", "RCE")}
    assert all(0 <= r["success_rate"] <= 1 for r in records)
    assert (tmp_path / "results.json").exists()
    out = capsys.readouterr().out
    assert "auc_kdensity" in out and "settings:" in out


def _documented_table() -> dict:
    """The quick-start table shown on the documentation's front page: (attack, objective) -> row."""
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "index.md").read_text()
    rows = re.findall(r"^\| (FGSM|BIM) \| (CE|RCE) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
                      text, re.M)
    keys = ("n_pairs", "success_rate", "distortion", "auc_confidence", "auc_non_me", "auc_kdensity")
    return {(r[0], r[1]): dict(zip(keys, map(float, r[2:]))) for r in rows}


@pytest.mark.slow
def test_quickstart_reproduces_the_documented_numbers(capsys):
    """The front page's numbers are a rerun's (one thread, deterministic algorithms). Tolerance: AUCs and rates
    0.005, n_pairs 2, distortion 0.05 (another CPU's float kernels may round differently)."""
    documented = _documented_table()
    assert len(documented) == 4
    for r in _load("quickstart").main(["--quiet"]):
        doc = documented[(r["attack"], r["objective"])]
        assert abs(r["n_pairs"] - doc["n_pairs"]) <= 2, (r, doc)
        assert abs(r["distortion"] - doc["distortion"]) <= 0.05, (r, doc)
        for k in ("success_rate", "auc_confidence", "auc_non_me", "auc_kdensity"):
            assert abs(r[k] - doc[k]) <= 0.005, (k, r, doc)
