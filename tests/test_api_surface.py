"""0.7's public surface: the top level is the user's path, moved names warn and still work, parameters are the
signature, one integer check."""

import importlib
import inspect
import warnings

import numpy as np
import pytest

import rce_art as ra


def test_top_level_is_small_and_every_name_resolves():
    assert len(ra.__all__) <= 50
    for name in ra.__all__:
        if not name.endswith("Torchattacks"):  # optional extra
            assert getattr(ra, name) is not None


@pytest.mark.parametrize("name", sorted(ra.MOVED))
def test_moved_top_level_names_warn_and_name_their_new_home(name):
    module, _, new = ra.MOVED[name].partition(":")
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{new}"):
        obj = getattr(ra, name)
    assert obj is getattr(importlib.import_module(module), new)


@pytest.mark.parametrize("old,new", [
    ("rce_art.detectors.feinman", "rce_art.detectors.kdbu"),
    ("rce_art.detectors.combined", "rce_art.detectors.characteristics"),
    ("rce_art.evaluation.adaptive", "rce_art.evaluation.rates"),
    ("rce_art.evaluation.detectors", "rce_art.evaluation.side_by_side"),
    ("rce_art.adapters.adaptive", "rce_art.adapters.adaptive_attacks"),
    ("rce_art.attacks.detector_pgd_forms", "rce_art.attacks.detector_pgd_art"),
])
def test_renamed_modules_warn_and_are_the_new_module(old, new):
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        mod = importlib.import_module(old)
    assert mod is importlib.import_module(new)


def test_unknown_top_level_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        ra.nonsense  # noqa: B018


def test_art_forms_take_their_core_parameters_with_the_same_defaults():
    for form, core in ((ra.DetectorPGDART, ra.DetectorPGD), (ra.CarliniWagnerWBART, ra.CarliniWagnerWB)):
        sig, core_sig = inspect.signature(form), inspect.signature(core)
        names = list(sig.parameters)
        assert names[:2] == ["estimator", "detector"] and names[-2:] == ["batch_size", "verbose"]
        for p in core_sig.parameters.values():
            assert sig.parameters[p.name].default == p.default, (form.__name__, p.name)
        assert set(form.attack_params) == set(names) - {"estimator"}


def test_detector_parameters_are_the_signature():
    for cls in (ra.KDensityDetector, ra.LIDDetector, ra.ConfidenceDetector, ra.ERDetector, ra.KDBUDetector):
        params = [p for p in inspect.signature(cls).parameters]
        assert cls.defence_params == params
        assert set(cls.fit_params) == set(params) - {"fpr", "batch_size", "verbose"}


def test_one_integer_check_everywhere(dropout_clf):
    for bad in (2.5, 3.0, True):
        with pytest.raises(ra.InvalidParameterError, match="must be an integer"):
            ra.DetectorPGD(0.1, steps=bad)
        with pytest.raises(ra.InvalidParameterError, match="must be an integer"):
            ra.KDensityDetector(dropout_clf, n_per_class=bad)
        with pytest.raises(ra.InvalidParameterError, match="must be an integer"):
            ra.RayS(dropout_clf, eps=0.1, max_queries=bad)
    with pytest.raises(ValueError, match=">= 1"):
        ra.LIDDetector(dropout_clf, k=0)
    assert issubclass(ra.InvalidParameterError, ValueError) and issubclass(ra.InvalidParameterError, TypeError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ra.DetectorPGD(0.1, steps=np.int64(5)).steps == 5  # numpy integers are integers
        assert ra.KDensityDetector(dropout_clf, n_per_class=np.int32(7)).n_per_class == 7


def test_the_flag_rule_flags_below_the_threshold_and_nan():
    import torch

    from rce_art.detectors import is_flagged

    np.testing.assert_array_equal(is_flagged([0.5, 1.0, 1.5, np.nan], 1.0), [True, False, False, True])
    assert is_flagged(torch.tensor([0.5, 1.0, float("nan")]), 1.0).tolist() == [True, False, True]


def test_the_renamed_report_package_imports_as_the_same_modules():
    import sys

    for name in [m for m in sys.modules if m.startswith("rce_art.robustness")]:
        del sys.modules[name]
    with pytest.warns(DeprecationWarning, match=r"rce_art\.report\.store"):
        from rce_art.robustness.store import ResultStore
    with pytest.warns(DeprecationWarning, match=r"rce_art\.report\.model"):
        from rce_art.robustness.report import EvaluationReport
    assert ResultStore is ra.report.ResultStore and EvaluationReport is ra.EvaluationReport


def test_unit_keys_are_typed_and_name_their_files_as_before():
    from rce_art.report import UnitKey, plan_units

    units = plan_units(["kd"], 5, 4, [0.05], True, [0.3])
    assert [str(u) for u in units] == ["kd|fpr", "kd|clean|0", "kd|clean|1", "kd|oblivious|0", "kd|oblivious|1",
                                       "kd|worst|0.05|0", "kd|worst|0.05|1", "kd|curve|0.3|0", "kd|curve|0.3|1",
                                       "kd|diagnostics", "kd|substitution"]
    assert [str(u) for u in plan_units(["kd"], 5, 4, [0.05], False, (), binarization=True)][-2:] == [
        "kd|substitution", "kd|binarization|0.05"]
    assert units[5] == UnitKey("kd", "worst", 0.05, 0) and units[5].fpr == 0.05 and units[5].batch == 0


def test_the_worst_case_defaults_have_one_frozen_home():
    import dataclasses

    from rce_art.adapters import adaptive_attacks
    from rce_art.report import BUDGETS
    from rce_art.settings import WORST_CASE

    with pytest.raises(dataclasses.FrozenInstanceError):
        WORST_CASE.apgd_iterations = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        BUDGETS["quick"] = 1.0  # read-only
    assert adaptive_attacks.APGD_ITERATIONS == WORST_CASE.apgd_iterations and BUDGETS is WORST_CASE.budgets
