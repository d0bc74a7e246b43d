"""``rce_art.evaluate`` and the ``rce-art`` command (issue 21): one call, one command, resumable, sharded, bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import rce_art as ra
from rce_art.report import CorruptResultError, EvaluationReport, evaluate, merge
from rce_art.report.cli import main

FAST = {"attacks": ["pgd-selective", "apgd-ce"], "budget": "quick", "batch_size": 12, "verbose": False,
        "curve_fprs": ()}

from conftest import clf_of as _clf
from conftest import user_data as _data


def test_one_call_report_is_honest_and_complete(user_files, digits, tmp_path):
    _, net = user_files
    x, y, x_cal, x_fit, y_fit = _data(digits)
    report = evaluate(_clf(net), ["confidence", "kd"], x, y, x_calibration=x_cal, x_fit=x_fit, y_fit=y_fit, eps=0.2,
                      out=tmp_path, **FAST)
    assert [r["detector"] for r in report.rows] == ["confidence", "kd"]
    for r in report.rows:
        for f in ("0.05", "0.5"):
            p = r["points"][f]
            sr, ra_, served = p["sr"], p["robust_accuracy"], p["served"]
            assert sr["n"] == served["k"] and ra_["n"] == 24 and sr["k"] + ra_["k"] == served["k"]
            assert sr["lo"] <= sr["rate"] <= sr["hi"] and p["sr_all"]["n"] == 24
            assert p["realised_fpr"]["n"] == 80  # the held-out half of x_calibration
            checks = report.diagnostics[r["detector"]][f]
            assert {c["verdict"] for c in checks} <= {"PASS", "WARN"} and len(checks) == 9
            assert [c["check"] for c in checks[6:]] == ["no success left behind", "trivial substitutes are broken",
                                                       "trivial substitutes are broken along the eps curve"]
            boot = p["bootstrap"]  # the threshold re-fitted on resamples of its calibration scores
            assert boot["n_resamples"] == 1000 and boot["robust_accuracy"]["rate"] == pytest.approx(ra_["rate"])
            assert boot["realised_fpr"]["rate"] == pytest.approx(p["realised_fpr"]["rate"])
    # success means misclassified AND not flagged, recomputed here from the records
    w = report.records["kd"]["worst@0.05"]
    assert np.array_equal(w["broken"], (np.array(w["pred"]) != y) & ~np.array(w["flagged"]))
    for name in ("report.json", "report.md", "report.html", "manifest.json"):
        assert (tmp_path / name).exists()
    again = EvaluationReport.from_json((tmp_path / "report.json").read_text())
    assert again.to_json() == report.to_json() and "| kd |" in report.table()
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "<table id=\"results\">" in html
    # resume: delete some units, run again: the same report, bit for bit
    units = sorted((tmp_path / "units").glob("*worst*.json"))
    for u in units[::2]:
        u.unlink()
    resumed = evaluate(_clf(net), ["confidence", "kd"], x, y, x_calibration=x_cal, x_fit=x_fit, y_fit=y_fit, eps=0.2,
                       out=tmp_path, **FAST)
    assert resumed.to_json() == report.to_json()
    # a changed setting on the same folder is refused, a corrupted unit is detected
    with pytest.raises(ValueError, match="another evaluation.*eps"):
        evaluate(_clf(net), ["confidence", "kd"], x, y, x_calibration=x_cal, x_fit=x_fit, y_fit=y_fit, eps=0.1,
                 out=tmp_path, **FAST)
    units[1].write_text(units[1].read_text()[:-20])
    with pytest.raises(CorruptResultError, match="truncated or corrupted"):
        evaluate(_clf(net), ["confidence", "kd"], x, y, x_calibration=x_cal, x_fit=x_fit, y_fit=y_fit, eps=0.2,
                 out=tmp_path, **FAST)


def test_shards_merged_give_the_single_process_report(user_files, digits, tmp_path):
    _, net = user_files
    x, y, x_cal, _, _ = _data(digits)
    det = ra.ConfidenceDetector(_clf(net)).fit(x[:0 + 1].repeat(2, 0), y[:1].repeat(2), x_calibration=x_cal[:80])
    kw = {"x_calibration": x_cal[80:], "eps": 0.2, **FAST, "curve_fprs": (0.2,)}
    whole = evaluate(_clf(net), {"conf": det}, x, y, out=tmp_path / "whole", **kw)
    for i in range(2):
        assert evaluate(_clf(net), {"conf": det}, x, y, out=tmp_path / f"s{i}", shard=(i, 2), **kw) is None
    merged = merge(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"])
    assert merged.to_json() == whole.to_json()
    assert (tmp_path / "merged" / "report.html").exists()
    with pytest.raises(ValueError, match="units have no results"):
        merge(tmp_path / "half", [tmp_path / "s0"])


def _cli(root, out, *extra):
    return ["evaluate", "--model", "usernet:make_net", "--weights", str(root / "net.safetensors"), "--data",
            str(root / "data.npz"), "--n", "24", "--clip", "0,1", "--preprocessing", "0.5,0.5", "--detectors",
            "confidence", "--attacks", "pgd-selective,apgd-ce", "--eps", "0.2", "--budget", "quick", "--curve-fprs", "0.2",
            "--batch-size", "12", "--out", str(out), "--quiet", *extra]


def test_command_writes_the_three_reports_and_rerenders(user_files, tmp_path, monkeypatch, capsys):
    root, _ = user_files
    monkeypatch.chdir(root)
    assert main(_cli(root, tmp_path / "out")) == 0
    printed = capsys.readouterr().out
    assert "| confidence |" in printed and "report.html" in printed
    for name in ("report.html", "report.md", "report.json"):
        assert (tmp_path / "out" / name).exists()
    (tmp_path / "out" / "report.html").unlink()
    assert main(["report", str(tmp_path / "out")]) == 0 and (tmp_path / "out" / "report.html").exists()


BAD = {
    "labels out of range": ({"y": 12}, "labels outside"),
    "NaN inputs": ({"x": float("nan")}, "NaN or infinite"),
    "out-of-range inputs": ({"x": 3.0}, "outside clip_values"),
    "wrong label shape": ({"y_shape": True}, "y must have shape"),
    "unknown detector": ({"args": ["--detectors", "kd,nonsense"]}, "unknown detector name 'nonsense'"),
    "unknown attack": ({"args": ["--attacks", "apgd-ce,pgd-magic"]}, "unknown attack names"),
    "factory does not import": ({"args": ["--model", "no_such_module:make"]}, "cannot import 'no_such_module'"),
    "weights do not fit": ({"weights": True}, "do not fit the model"),
    "invalid eps": ({"args": ["--eps", "-0.1"]}, "eps must be a finite number > 0"),
    "wrong input shape": ({"x_shape": True}, "cannot run on inputs of shape"),
    "reference not a fraction": ({"args": ["--reference-robust-accuracy", "1.5"]},
                                 "reference_robust_accuracy must be a fraction"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_clear_line_and_writes_nothing(case, user_files, tmp_path, monkeypatch, capsys):
    root, _ = user_files
    monkeypatch.chdir(root)
    change, message = BAD[case]
    data = dict(np.load(root / "data.npz"))
    if "y" in change:
        data["y"] = data["y"].copy()
        data["y"][3] = change["y"]
    if "x" in change:
        data["x"] = data["x"].copy()
        data["x"][2, 0, 0, 0] = change["x"]
    if change.get("y_shape"):
        data["y"] = data["y"][:-1]
    if change.get("x_shape"):
        data["x"] = data["x"][:, :, :7, :7]
    np.savez(tmp_path / "bad.npz", **data)
    args = _cli(root, tmp_path / "out")
    args[args.index("--data") + 1] = str(tmp_path / "bad.npz")
    if change.get("weights"):
        from safetensors.torch import save_file

        save_file({"0.weight": torch.zeros(3, 3)}, str(tmp_path / "w.safetensors"))
        args[args.index("--weights") + 1] = str(tmp_path / "w.safetensors")
    extra = change.get("args", [])
    for i in range(0, len(extra), 2):
        if extra[i] in args:
            args[args.index(extra[i]) + 1] = extra[i + 1]
        else:
            args += extra[i : i + 2]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rce-art: error:") and message in err and "\n" not in err, err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_unwritable_out_is_refused(user_files, tmp_path, monkeypatch, capsys):
    root, _ = user_files
    monkeypatch.chdir(root)
    (tmp_path / "file").write_text("not a folder")
    assert main(_cli(root, tmp_path / "file" / "out")) == 2
    assert "cannot write the results folder" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_report(user_files, tmp_path):
    root, _ = user_files
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rce_art", *_cli(root, tmp_path / "killed")]
    cmd[cmd.index("--detectors") + 1] = "confidence,kd"
    ref = [sys.executable, "-m", "rce_art", *_cli(root, tmp_path / "whole")]
    ref[ref.index("--detectors") + 1] = "confidence,kd"
    subprocess.run(ref, env=env, cwd=root, check=True, capture_output=True)
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "killed" / "units").glob("*.json"))) < 6:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list((tmp_path / "killed" / "units").glob("*.json")))
    assert not (tmp_path / "killed" / "report.json").exists(), "the run ended before it was killed"
    subprocess.run(cmd, env=env, cwd=root, check=True, capture_output=True)
    a = json.loads((tmp_path / "whole" / "report.json").read_text())
    b = json.loads((tmp_path / "killed" / "report.json").read_text())
    assert a == b and done >= 6


@pytest.mark.slow
def test_html_report_opens_in_a_headless_browser(user_files, digits, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium / Chrome installed to open the report")
    _, net = user_files
    x, y, x_cal, x_fit, y_fit = _data(digits)
    evaluate(_clf(net), ["confidence"], x, y, x_calibration=x_cal, x_fit=x_fit, y_fit=y_fit, eps=0.2, out=tmp_path,
             **{**FAST, "curve_fprs": (0.2,)})
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom",
                          (tmp_path / "report.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert '<table id="results">' in dom and '<table id="settings">' in dom and "PASS" in dom
    # the figures a reader looks for: success against the FPR and eps, clean vs best-attempt scores and ROC, gallery
    for title in ("against the false-positive rate", "Success rate against eps", "best attempts", "ROC",
                  "Broken inputs"):
        assert title in dom, title
    assert dom.count("data:image/png;base64,") >= 5 and "robust accuracy with detection" in dom
    shot = subprocess.run([browser, *flags, f"--screenshot={tmp_path / 's.png'}",
                           "--window-size=1200,2400", (tmp_path / "report.html").as_uri()], capture_output=True,
                          timeout=120)
    assert shot.returncode == 0 and (tmp_path / "s.png").stat().st_size > 10_000


@pytest.mark.slow
def test_torchrun_ranks_share_the_work_and_rank_zero_writes_the_single_process_report(user_files, tmp_path):
    root, _ = user_files
    data = dict(np.load(root / "data.npz"))
    np.savez(tmp_path / "d.npz", x=data["x"][:24], y=data["y"][:24], x_calibration=data["x"][24:],
             x_train=data["x_train"], y_train=data["y_train"])
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}

    def args(out):  # no --n: torchrun's own parser would take it for an abbreviation of its options
        a = _cli(root, out)
        a[a.index("--data") + 1] = str(tmp_path / "d.npz")
        i = a.index("--n")
        return a[:i] + a[i + 2 :]

    subprocess.run([sys.executable, "-m", "rce_art", *args(tmp_path / "one")], env=env, cwd=root, check=True,
                   capture_output=True)
    script = str(Path(ra.__file__).parent / "__main__.py")
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", script,
           *args(tmp_path / "two")]
    proc = subprocess.run(two, env=env, cwd=root, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "report.json").read_text())
    b = json.loads((tmp_path / "two" / "report.json").read_text())
    assert a == b
