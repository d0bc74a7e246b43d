"""One call, one command: an honest robustness report for a classifier and its detectors.

[`evaluate`][rce_art.robustness.evaluate] runs, per detector, clean accuracy, the realised false-positive rate, the
oblivious attack, the standard worst-case ensemble ([`rce_art.adapters.STANDARD_ENSEMBLE`][rce_art.adapters.STANDARD_ENSEMBLE])
at each operating point and the diagnostics, resumably and shardably, and returns an
[`EvaluationReport`][rce_art.robustness.EvaluationReport]. The ``rce-art`` command does the same for a model file.
"""

from rce_art.robustness.diagnostics import check_rows, run_diagnostics
from rce_art.robustness.evaluate import BUDGETS, evaluate, plan_units
from rce_art.robustness.merge import merge
from rce_art.robustness.named import DETECTOR_NAMES, fit_named_detector
from rce_art.robustness.report import EvaluationReport, build_report
from rce_art.robustness.store import CorruptResultError, ResultStore

__all__ = [
    "BUDGETS",
    "DETECTOR_NAMES",
    "CorruptResultError",
    "EvaluationReport",
    "ResultStore",
    "build_report",
    "check_rows",
    "evaluate",
    "fit_named_detector",
    "merge",
    "plan_units",
    "run_diagnostics",
]
