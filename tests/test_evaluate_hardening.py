"""Issue 27, items 4-5: the results folder keys on everything the numbers depend on (no silent reuse, no silent
mixing), and hostile or odd inputs get one clear line with nothing written. Each test failed on 0.5."""

import dataclasses
import importlib
import json
import os
import threading

import numpy as np
import pytest
import torch
from conftest import clf_of, user_data

import rce_art as ra
from rce_art.report import EvaluationReport, ResultStore, evaluate, merge
from rce_art.report.cli import main
from rce_art.evaluation.store import CorruptResultError, atomic_save, atomic_write

FAST = {"attacks": ["pgd-selective"], "budget": "quick", "batch_size": 12, "verbose": False, "curve_fprs": (),
        "diagnostics": False}


@pytest.fixture(scope="module")
def setup(user_files, digits):
    _, net = user_files
    return net, user_data(digits)


def _run(net, data, out, clf=None, names=("confidence",), **kw):
    x, y, x_cal, x_fit, y_fit = data
    args = {"x_calibration": x_cal, "x_fit": x_fit, "y_fit": y_fit, "eps": 0.2, "out": out, **FAST, **kw}
    return evaluate(clf or clf_of(net), list(names), x[:12], y[:12], **args)


class Tempered(torch.nn.Module):
    """The user's net with a temperature: another forward, the same state dict."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x) / 3.0


def test_a_rerun_that_changes_what_the_numbers_depend_on_is_refused(setup, tmp_path, monkeypatch):
    """0.5 reused every stored unit and fitted detector file in each of these cases."""
    net, data = setup
    _run(net, data, tmp_path)
    changes = {
        "clip_values": ra.make_art_classifier(net, (1, 8, 8), 10, (0.0, 1.5), preprocessing=(0.5, 0.5)),
        "preprocessing": ra.make_art_classifier(net, (1, 8, 8), 10, (0.0, 1.0), preprocessing=(0.4, 0.5)),
        "model.probe": ra.make_art_classifier(Tempered(net), (1, 8, 8), 10, (0.0, 1.0), preprocessing=(0.5, 0.5)),
    }
    for key, clf in changes.items():
        with pytest.raises(ValueError, match=f"another evaluation.*{key.replace('.', '[.]')}"):
            _run(net, data, tmp_path, clf=clf)
    x, y, x_cal, x_fit, y_fit = data
    with pytest.raises(ValueError, match="another evaluation.*fit_data"):
        _run(net, (x, y, x_cal, x_fit[:-1], y_fit[:-1]), tmp_path)
    ev = importlib.import_module("rce_art.report.evaluate")  # the module (the package exports the function)
    orig = ev.package_versions
    monkeypatch.setattr(ev, "package_versions", lambda: {**orig(), "torch": "0.0.1"})
    with pytest.raises(ValueError, match="another evaluation.*versions.torch"):
        _run(net, data, tmp_path)
    monkeypatch.setattr(ev, "package_versions", orig)
    # the same attack name from another provider (0.7: apgd-ce, apgd-t, square moved from ART to rce-art's own)
    spec = ev.REGISTRY["pgd-selective"]
    monkeypatch.setitem(ev.REGISTRY, "pgd-selective", dataclasses.replace(spec, toolkit="art"))
    with pytest.raises(ValueError, match="another evaluation.*attack_providers"):
        _run(net, data, tmp_path)
    monkeypatch.setitem(ev.REGISTRY, "pgd-selective", spec)
    _run(net, data, tmp_path)  # the same evaluation resumes


def test_units_are_bound_to_their_evaluation(setup, tmp_path):
    """0.5: delete manifest.json and the old units of eps 0.2 were reused by an eps 0.3 run."""
    net, data = setup
    _run(net, data, tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(CorruptResultError, match="another evaluation"):
        _run(net, data, tmp_path, eps=0.3)
    assert list((tmp_path / "detectors").glob("confidence-*.safetensors"))  # the fitted file is bound by its name


def test_duplicates_and_bad_arguments_fail_before_anything_is_written(setup, tmp_path):
    net, data = setup
    cases = [({"fprs": (0.05, 0.05)}, ValueError, "distinct"),
             ({"attacks": ["pgd-selective", "pgd-selective"]}, ValueError, "distinct"),
             ({"eps": True}, TypeError, "eps must be a real number"),
             ({"batch_size": 2.7}, TypeError, "batch_size must be an integer"),
             ({"curve_fprs": (0.0,)}, ValueError, "curve_fprs"),
             ({"dets": {"../../x": "confidence"}}, ValueError, "label"),
             ({"dets": {"a|b": "confidence"}}, ValueError, "label"),
             ({"dets": {"a b": "confidence", "a_b": "kd"}}, ValueError, "label"),
             ({"dets": {"KD": "kd", "kd": "confidence"}}, ValueError, "ignoring case")]
    x, y, x_cal, x_fit, y_fit = data
    for change, error, message in cases:
        kw = {k: v for k, v in change.items() if k != "dets"}
        with pytest.raises(error, match=message):
            evaluate(clf_of(net), change.get("dets", ["confidence"]), x[:12], y[:12], x_calibration=x_cal,
                     x_fit=x_fit, y_fit=y_fit, out=tmp_path / "o", **{**FAST, "eps": 0.2, **kw})
        assert not (tmp_path / "o").exists(), change
    from rce_art.report.evaluate import _validated

    v = _validated(clf_of(net), ["confidence"], x, y, x_cal, x_fit, y_fit, np.float32(0.1), "linf", "standard",
                   (0.05,), (), "quick", np.int64(7), 0, None, None)
    assert v["eps"] == pytest.approx(0.1) and v["batch_size"] == 7


def test_art_square_refuses_images_under_5x5_pixels(tmp_path):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    clf = ra.make_art_classifier(net, (1, 4, 4), 3, (0.0, 1.0))
    x = np.random.default_rng(0).uniform(0, 1, (30, 1, 4, 4)).astype(np.float32)
    det = ra.ConfidenceDetector(clf).fit(x, np.arange(30) % 3, x_calibration=x)
    with pytest.raises(ValueError, match="at least 5x5"):  # ART's Square draws windows inside the image
        evaluate(clf, [det], x[:5], np.arange(5) % 3, x_calibration=x, attacks=["apgd-ce", "art-square"], out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_square_refuses_inputs_that_are_not_images(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(16, 3))
    clf = ra.make_art_classifier(net, (16,), 3, (0.0, 1.0))
    x = np.random.default_rng(0).uniform(0, 1, (30, 16)).astype(np.float32)
    det = ra.ConfidenceDetector(clf).fit(x, np.arange(30) % 3, x_calibration=x)
    with pytest.raises(ValueError, match=r"runs only on images \(C, H, W\)"):
        evaluate(clf, [det], x[:5], np.arange(5) % 3, x_calibration=x, attacks=["apgd-ce", "square"], out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_manifest_is_created_once_when_runs_race(tmp_path):
    results, errors = [], []

    def start(i):
        try:
            results.append(ResultStore(tmp_path, {"eps": i}).identity)
        except ValueError as e:
            errors.append(e)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1 and len(errors) == 7
    assert atomic_write(tmp_path / "manifest.json", "x", exclusive=True) is False
    assert json.loads((tmp_path / "manifest.json").read_text())["identity"] == results[0]


def test_files_follow_the_umask_and_temporary_names_are_unique(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", "{}")
        seen = []
        for _ in range(2):
            atomic_save(tmp_path / "d.safetensors", lambda p: (seen.append(p), open(p, "w").write("x")))
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d.safetensors").stat().st_mode & 0o777 == 0o644
    assert len(set(seen)) == 2 and not any(os.path.exists(p) for p in seen)


def test_merge_refuses_mixed_shards_and_copies_only_the_plan(setup, tmp_path):
    net, data = setup
    kw = {"curve_fprs": ()}
    for i in range(2):
        assert _run(net, data, tmp_path / f"s{i}", shard=(i, 2), **kw) is None
    _run(net, data, tmp_path / "other", shard=(1, 2), eps=0.3, **kw)
    with pytest.raises(ValueError, match="another evaluation.*eps"):
        merge(tmp_path / "m1", [tmp_path / "s0", tmp_path / "other"])
    assert not (tmp_path / "m1").exists()
    stray = tmp_path / "s1" / "units" / "confidence_worst_0.3_0-0000000000.json"
    stray.write_text("{}")
    with pytest.raises(ValueError, match="not part of this evaluation"):
        merge(tmp_path / "m2", [tmp_path / "s0", tmp_path / "s1"])
    stray.unlink()
    whole = merge(tmp_path / "m3", [tmp_path / "s0", tmp_path / "s1"])
    assert whole.rows[0]["points"]["0.05"]["sr_all"]["n"] == 12


def _crafted_report(setup, tmp_path):
    net, data = setup
    rep = _run(net, data, tmp_path / "r")
    d = json.loads((tmp_path / "r" / "report.json").read_text())
    evil = "<script>alert(1)</script>|`x`"
    d["rows"][0]["detector"] = evil
    d["diagnostics"] = {evil: {"0.05": [{"check": evil, "verdict": "<b>", "evidence": evil}]}}
    d["records"] = {evil: d["records"][rep.rows[0]["detector"]]}
    d["settings"]["norm"] = evil
    d["settings"]["attacks"] = [evil]
    (tmp_path / "r" / "report.json").write_text(json.dumps(d))
    return tmp_path / "r"


def test_a_crafted_report_cannot_inject_markup(setup, tmp_path, capsys):
    folder = _crafted_report(setup, tmp_path)
    assert main(["report", str(folder)]) == 0
    html, md = (folder / "report.html").read_text(), (folder / "report.md").read_text()
    assert "<script" not in html and "<b>" not in html and "&lt;script&gt;" in html
    assert "<script" not in md and "\\|" in md
    d = json.loads((folder / "report.json").read_text())
    d["rows"][0]["points"]["0.05"]["sr"] = "nonsense"
    (folder / "report.json").write_text(json.dumps(d))
    before = (folder / "report.html").read_text()
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rce-art: error:") and "not a valid report" in err and "\n" not in err
    assert (folder / "report.html").read_text() == before  # nothing half-written
    (folder / "report.json").write_text("{\"format\": ")
    assert main(["report", str(folder)]) == 2 and "invalid JSON" in capsys.readouterr().err
    with pytest.raises(ValueError, match="format"):
        EvaluationReport.from_json(json.dumps({"format": "rce_art.EvaluationReport/1"}))


def _cli(root, out, *extra):
    return ["evaluate", "--model", "usernet:make_net", "--weights", str(root / "net.safetensors"), "--data",
            str(root / "data.npz"), "--n", "12", "--clip", "0,1", "--preprocessing", "0.5,0.5", "--detectors",
            "confidence", "--attacks", "pgd-selective", "--eps", "0.2", "--budget", "quick", "--curve-fprs", "",
            "--no-diagnostics", "--batch-size", "12", "--out", str(out), "--quiet", *extra]


BAD = {
    "negative --n": (["--n", "-3"], "--n must be between 1 and"),
    "--n beyond the data": (["--n", "100000"], "--n must be between 1 and"),
    "NaN clip": (["--clip", "nan,1"], "two finite numbers"),
    "infinite clip": (["--clip", "0,inf"], "two finite numbers"),
    "reversed clip": (["--clip", "1,0"], "LO < HI"),
    "zero std": (["--preprocessing", "0.5,0"], "STD > 0"),
    "duplicate fprs": (["--fprs", "0.05,0.05"], "distinct"),
    "factory raises": (["--model", "brokennet:make_net"], "raised RuntimeError: no GPU here"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_command_line_mistakes_are_one_line(case, user_files, tmp_path, monkeypatch, capsys):
    root, _ = user_files
    monkeypatch.chdir(root)
    (root / "brokennet.py").write_text("def make_net():\n    raise RuntimeError('no GPU here')\n")
    args, message = BAD[case]
    argv = _cli(root, tmp_path / "out")
    for i in range(0, len(args), 2):
        if args[i] in argv:
            argv[argv.index(args[i]) + 1] = args[i + 1]
        else:
            argv += args[i : i + 2]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rce-art: error:") and message in err and "\n" not in err, err
    assert not (tmp_path / "out").exists()


def test_training_arrays_are_named_in_errors(user_files, tmp_path, monkeypatch, capsys):
    root, _ = user_files
    monkeypatch.chdir(root)
    data = dict(np.load(root / "data.npz"))
    data["x_train"] = data["x_train"].copy()
    data["x_train"][5, 0, 0, 0] = np.nan
    np.savez(tmp_path / "bad.npz", **data)
    argv = _cli(root, tmp_path / "out")
    argv[argv.index("--data") + 1] = str(tmp_path / "bad.npz")
    assert main(argv) == 2
    assert "x_train" in capsys.readouterr().err
    data["x_train"][5, 0, 0, 0] = 0.0
    data["y_train"] = data["y_train"].copy()
    data["y_train"][0] = 99
    np.savez(tmp_path / "bad.npz", **data)
    assert main(argv) == 2
    assert "y_train" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_disk_full_is_one_line(user_files, tmp_path, monkeypatch, capsys):
    import errno

    import rce_art.evaluation.store as store

    root, _ = user_files
    monkeypatch.chdir(root)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "manifest.json"))

    monkeypatch.setattr(store, "atomic_write", full)
    assert main(_cli(root, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rce-art: error:") and "No space left on device" in err and "\n" not in err


def test_pickled_weights_are_refused_where_torch_load_is_unsafe(user_files, tmp_path, monkeypatch, capsys):
    root, net = user_files
    monkeypatch.chdir(root)
    torch.save(net.state_dict(), tmp_path / "net.pt")
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    argv = _cli(root, tmp_path / "out")
    argv[argv.index("--weights") + 1] = str(tmp_path / "net.pt")
    assert main(argv) == 2
    assert "CVE-2025-32434" in capsys.readouterr().err and not (tmp_path / "out").exists()
