"""One call, one command: an honest robustness report for a classifier and its detectors.

[`evaluate`][rce_art.report.evaluate] runs, per detector and operating point, the standard worst-case ensemble
([`rce_art.adapters.STANDARD_ENSEMBLE`][rce_art.adapters.STANDARD_ENSEMBLE]), the oblivious attack and the
diagnostics, resumably and shardably, and returns an [`EvaluationReport`][rce_art.report.EvaluationReport]: robust
accuracy with detection, the success rate over the served inputs, the realised false-positive rate at the threshold
attacked (definitions: docs/concepts.md). The ``rce-art`` command does the same for a model file.
"""

from rce_art.evaluation.store import CorruptResultError, ResultStore
from rce_art.report.diagnostics import check_rows, run_diagnostics
from rce_art.report.evaluate import BUDGETS, DEFAULT_CURVE_FPRS, evaluate, plan_units
from rce_art.report.merge import merge
from rce_art.report.model import EvaluationReport, build_report
from rce_art.report.named import DETECTOR_NAMES, fit_named_detector
from rce_art.report.units import UnitKey

__all__ = [
    "BUDGETS",
    "DEFAULT_CURVE_FPRS",
    "DETECTOR_NAMES",
    "CorruptResultError",
    "EvaluationReport",
    "ResultStore",
    "UnitKey",
    "build_report",
    "check_rows",
    "evaluate",
    "fit_named_detector",
    "merge",
    "plan_units",
    "run_diagnostics",
]
