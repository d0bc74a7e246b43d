"""Issue 27, items 1-3: the report's numbers mean what the literature means, its figures show the attack, and every
operating point gets its own diagnostics. Each test failed on 0.5."""

import warnings

import numpy as np
import pytest
import torch
from conftest import clf_of, user_data

import rce_art as ra
from rce_art.evaluation import (
    WorstCaseEnsemble,
    adaptive_report,
    attack_failure_rate,
    operating_point_rates,
    robust_accuracy_with_detection,
    robust_accuracy_with_rejection,
    served_success_rate,
    success_at_fpr,
)
from rce_art.report import build_report, evaluate, plan_units

FAST = {"attacks": ["pgd-selective", "apgd-ce"], "budget": "quick", "batch_size": 12, "verbose": False}


def test_robust_accuracy_with_detection_counts_clean_rejections_as_errors():
    correct = np.array([1, 1, 1, 1, 0, 1], bool)
    flagged = np.array([0, 0, 1, 1, 0, 0], bool)  # two clean inputs rejected
    broken = np.array([0, 1, 0, 0, 1, 0], bool)
    # served: 0, 1, 5; not broken among them: 0, 5 -> 2 of 6 (0.5 called it 4 of 6 by counting the rejected ones)
    assert robust_accuracy_with_detection(correct, flagged, broken) == pytest.approx(2 / 6)
    assert served_success_rate(correct, flagged, broken) == pytest.approx(1 / 3)
    rates = operating_point_rates(correct, flagged, broken)
    assert rates["robust_accuracy"]["rate"] == pytest.approx(rates["served"]["rate"] * (1 - rates["sr"]["rate"]))
    assert rates["selective_accuracy"]["k"] == 3 and rates["selective_accuracy"]["n"] == 4
    assert rates["sr_all"]["k"] == 2 and rates["attack_failure"]["rate"] == pytest.approx(4 / 6)
    assert attack_failure_rate([0, 5], [0, 1], [False, True]) == 1.0
    with pytest.warns(DeprecationWarning, match="attack_failure_rate"):
        assert robust_accuracy_with_rejection([0, 5], [0, 1], [False, False]) == 0.5
    assert np.isnan(served_success_rate([0], [0], [0]))  # nothing served: no rate, not 0
    with pytest.raises(ValueError, match="shape"):
        robust_accuracy_with_detection([1, 1], [0], [0, 0])


def test_success_at_fpr_over_the_served_inputs_and_adaptive_report():
    clean = np.arange(100, dtype=float)  # 50% FPR -> threshold 50
    adv = np.array([60.0, 70.0, 10.0, 80.0])
    goal = np.array([True, True, True, True])
    served = np.array([True, False, True, True])
    assert success_at_fpr(clean, adv, goal, 0.5) == pytest.approx(3 / 4)
    assert success_at_fpr(clean, adv, goal, 0.5, served=served) == pytest.approx(2 / 3)
    x_scores = np.array([90.0, 20.0, 90.0, 90.0])  # input 1 is rejected on clean data at 50%
    y, clean_pred = np.array([0, 1, 2, 3]), np.array([0, 1, 2, 9])  # input 3 misclassified on clean data
    rec = adaptive_report(clean, x_scores, adv, np.array([5, 5, 5, 5]), y, goal, np.zeros(4), np.zeros(4),
                          fprs=(0.5,), clean_pred=clean_pred)
    assert rec["served@50"] == 0.5 and rec["SR@50"] == 0.5 and rec["robust_acc@50"] == 0.25
    assert rec["SR_all@50"] == 0.75 and rec["attack_failure@50"] == 0.25
    with pytest.warns(DeprecationWarning, match="clean_pred"):
        adaptive_report(clean, x_scores, adv, np.array([5, 5, 5, 5]), y, goal, np.zeros(4), np.zeros(4), fprs=(0.5,))


@pytest.fixture(scope="module")
def report(user_files, digits, tmp_path_factory):
    _, net = user_files
    x, y, x_cal, x_fit, y_fit = user_data(digits)
    out = tmp_path_factory.mktemp("definitions")
    rep = evaluate(clf_of(net), ["confidence", "kd"], x, y, x_calibration=x_cal, x_fit=x_fit, y_fit=y_fit, eps=0.2,
                   out=out, curve_fprs=(0.2,), diagnostics=False, **FAST)
    return rep, out


def test_report_rates_are_recomputed_from_the_per_input_records(report):
    rep, _ = report
    for row in rep.rows:
        rec = rep.records[row["detector"]]
        y = np.asarray(rec["y"])
        correct = np.asarray(rec["clean_pred"]) == y
        held = np.asarray(rec["held_out_score"])
        for f, p in row["points"].items():
            t = rec["thresholds"][f]
            flagged = np.asarray(rec["clean_score"]) < t
            broken = np.asarray(rec[f"worst@{f}"]["broken"], bool)
            assert p["threshold"] == t
            assert p["robust_accuracy"]["k"] == int((correct & ~flagged & ~broken).sum())
            # a clean-rejected input is never counted robust (0.5 counted every unbroken one)
            assert p["robust_accuracy"]["k"] + int((flagged & ~broken).sum()) <= len(y)
            assert p["sr"]["n"] == int((correct & ~flagged).sum())
            # the realised FPR is the one at the threshold attacked, per operating point
            assert p["realised_fpr"]["k"] == int((held < t).sum()) and p["realised_fpr"]["n"] == held.size
            served = p["served"]["rate"]
            assert p["robust_accuracy"]["rate"] == pytest.approx(served * (1 - p["sr"]["rate"]))
    text = rep.to_markdown()
    assert "robust acc (detection)" in rep.table() and "Tramer" in text and "attack-failure rate" in text
    assert "robust accuracy with rejection" not in rep.table()
    assert len(rep.sentences()) == 4 and all("robust accuracy with detection" in s for s in rep.sentences())
    assert all(" = served " in s and " x (1 - SR " in s for s in rep.sentences())  # the identity, printed


def test_unbroken_inputs_keep_the_attacks_best_attempt(tiny_model, tiny_data):
    """0.5 recorded x_adv = x for every unbroken input, so 'clean vs worst case' compared the clean set with itself."""
    x, y = tiny_data
    clf = ra.make_art_classifier(tiny_model, (1, 8, 8), 3, (-0.5, 0.5))
    det = ra.ConfidenceDetector(clf).fit(x[:30], y[:30], x_calibration=x[30:])
    top = float(det.calibration_scores_.max()) + 10.0  # every input flagged: nothing can be broken
    attack = ra.adapters.build_adaptive_attack("pgd-selective", 0.3)
    r = WorstCaseEnsemble([attack]).run(det, x[:20], y[:20], threshold=top)
    assert not r.broken.any() and r.flagged.all()
    mis = r.pred != y[:20]
    assert mis.sum() >= 10  # the attack misclassified most inputs (then flagged): those are the best attempts
    moved = (r.x_adv - torch.as_tensor(x[:20])).flatten(1).abs().amax(1).numpy() > 0
    assert moved.all() and np.all(r.linf <= 0.3 + 1e-6)
    clean_score = det.score(x[:20])
    assert (np.abs(r.score - clean_score) > 1e-6).sum() >= 15


def test_html_opens_with_sentences_and_draws_the_attack(report):
    rep, out = report
    html = (out / "report.html").read_text()
    for title in ("Success rate and robust accuracy against the false-positive rate", "Success rate against eps",
                  "attacks&#x27; best attempts", "Broken inputs: kd", "<table id=\"settings\">"):
        assert title in html, title
    assert html.index("<li>") < html.index('<table id="results">')  # one plain sentence per detector first
    assert "<pre>" not in html  # settings laid out as a table, not a JSON dump
    curve = rep.rows[1]["curve"]
    assert [c["fpr"] for c in curve] == [0.05, 0.2, 0.5] and [c["budget"] for c in curve] == ["quick"] * 3
    gallery = rep.records["kd"]["gallery"]
    assert any(gallery.values())
    for f, items in gallery.items():
        w = rep.records["kd"][f"worst@{f}"]
        for g in items:
            i = g["index"]
            assert w["broken"][i] and w["attack"][i] != "clean"
            assert np.abs(np.asarray(g["x_adv"]) - np.asarray(g["x"])).max() <= 0.2 + 1e-6


def _synthetic(masking_at: float, attack_at: dict[float, str]):
    """Results of one detector, 4 inputs, two operating points: input 0 broken at each point by the given attack."""
    settings = {"fprs": [0.05, 0.5], "curve_fprs": [], "budget": "standard", "n": 4, "eps": 0.1, "norm": "linf",
                "attacks": ["apgd-ce", "square"], "clip_values": [0.0, 1.0]}
    units = plan_units(["d"], 4, 4, [0.05, 0.5], False)
    res = {"d|fpr": {"held_out_score": [0.0, 1.0, 2.0, 3.0], "nominal": 0.05,
                     "thresholds": {"0.05": 0.5, "0.5": 1.5}, "timing": {"seconds": 0}},
           "d|clean|0": {"pred": [0, 1, 2, 3], "score": [5.0, 5.0, 5.0, 5.0], "timing": {"seconds": 0}},
           "d|oblivious|0": {"misclassified": [False] * 4, "score": [5.0] * 4, "linf": [0.0] * 4,
                             "timing": {"seconds": 0}},
           "d|substitution": {"n_candidates": 4, "timing": {"seconds": 0},
                              "fprs": {str(f): {"distance": [None] * 4, "index": [-1] * 4} for f in (0.05, 0.5)}}}
    for f in (0.05, 0.5):
        res[f"d|worst|{f}|0"] = {"broken": [True, False, False, False], "attack": [attack_at[f], "", "", ""],
                                 "masking": [f == masking_at, False, False, False], "linf": [0.1, 0, 0, 0],
                                 "l2": [0.1, 0, 0, 0], "score": [5.0] * 4, "flagged": [False] * 4, "pred": [1, 1, 2, 3],
                                 "gradients": [10.0] * 4, "queries": [20.0] * 4, "threshold": 0.5 if f == 0.05 else 1.5,
                                 "per_attack": [], "gallery": [], "timing": {"seconds": 0}}
    return settings, units, res


def test_every_operating_point_gets_its_own_diagnostics_and_shares():
    """0.5 computed 'broke most', the shares and the masking check from the first operating point only."""
    settings, units, res = _synthetic(0.5, {0.05: "apgd-ce", 0.5: "square"})
    rep = build_report(settings, units, res, [0, 1, 2, 3])
    points = rep.rows[0]["points"]
    assert points["0.05"]["top_attack"] == "apgd-ce" and points["0.5"]["top_attack"] == "square"
    assert points["0.05"]["masking"] == 0 and points["0.5"]["masking"] == 1
    verdict = {f: {c["check"]: c["verdict"] for c in rep.diagnostics["d"][f]} for f in ("0.05", "0.5")}
    assert verdict["0.05"]["gradient-free attacks do not beat gradient ones"] == "PASS"
    assert verdict["0.5"]["gradient-free attacks do not beat gradient ones"] == "WARN"
    assert "square: 1" in rep.to_markdown()
    res["d|worst|0.5|0"]["threshold"] = 9.0  # a unit attacked at another threshold than the plan's is refused
    with pytest.raises(ra.report.CorruptResultError, match="threshold"):
        build_report(settings, units, res, [0, 1, 2, 3])


def test_sanity_curves_are_counted_at_each_operating_points_threshold():
    from rce_art.report.diagnostics import check_rows

    outcome = {"misclassified": [True, True, True, False], "score": [0.0, 1.0, 2.0, 9.0]}
    diag = {"n": 4, "steps": [1, 2, 4], "by_steps": [outcome] * 3, "eps_curve": [0.1, 0.2],
            "by_eps": [outcome, {"misclassified": [False] * 4, "score": [9.0] * 4}], "unbounded_misclassification": 1.0,
            "zero_grad_fraction": 0.0, "nonfinite_grad_fraction": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low = {c["check"]: c for c in check_rows(diag, 0.05, -1.0, 1, 20, 0, 4)}
        high = {c["check"]: c for c in check_rows(diag, 0.5, 5.0, 10, 20, 0, 4)}
    assert "SR 0.75, 0.75" in low["success does not fall as steps grow"]["evidence"]
    assert "SR 0.00, 0.00" in high["success does not fall as steps grow"]["evidence"]
    assert low["success does not fall as eps grows"]["verdict"] == "WARN"  # 0.75 -> 0.00
    assert high["success does not fall as eps grows"]["verdict"] == "PASS"
    assert high["realised FPR matches the nominal one"]["verdict"] == "PASS"
