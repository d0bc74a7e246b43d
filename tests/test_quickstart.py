import importlib.util
from pathlib import Path

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
