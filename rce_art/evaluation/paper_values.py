"""Reference numbers reported by Pang et al. (2018), for printing beside ours.

Keys: dataset (``"mnist"``, ``"cifar10"``) -> ... Values are copied from the paper's
tables (ResNet-32 unless stated); AUCs are in [0, 1] here (the paper prints 10^-2).
"""

from __future__ import annotations

__all__ = ["TABLE1_ERROR", "TABLE2"]

#: Table 1: test error rates (%) by (model, objective).
TABLE1_ERROR: dict[str, dict[tuple[str, str], float]] = {
    "mnist": {("resnet32", "CE"): 0.38, ("resnet32", "RCE"): 0.29, ("resnet56", "CE"): 0.36, ("resnet56", "RCE"): 0.32},
    "cifar10": {("resnet32", "CE"): 7.13, ("resnet32", "RCE"): 7.02, ("resnet56", "CE"): 6.49, ("resnet56", "RCE"): 6.60},
}

# (distortion, confidence AUC, non-ME AUC, K-density AUC), arXiv version's Table 2.
_T2 = {
    "mnist": {
        "fgsm": {"CE": (26.92, 79.7, 66.8, 98.8), "RCE": (26.63, 98.8, 98.6, 99.4)},
        "bim": {"CE": (6.80, 88.9, 70.5, 90.0), "RCE": (7.15, 91.7, 90.6, 91.8)},
        "ilcm": {"CE": (6.57, 98.4, 50.4, 96.2), "RCE": (6.60, 100.0, 97.0, 98.6)},
        "jsma": {"CE": (12.1, 98.6, 60.1, 97.7), "RCE": (12.87, 100.0, 99.4, 99.0)},
        "cw": {"CE": (8.63, 98.6, 64.1, 99.4), "RCE": (11.04, 100.0, 99.5, 99.8)},
        "cw-hc": {"CE": (13.70, 0.0, 40.0, 91.1), "RCE": (23.20, 0.1, 93.4, 99.6)},
    },
    "cifar10": {
        "fgsm": {"CE": (29.80, 71.5, 66.9, 99.7), "RCE": (29.81, 92.6, 91.4, 98.0)},
        "bim": {"CE": (6.29, 0.0, 64.6, 100.0), "RCE": (5.46, 0.7, 70.2, 100.0)},
        "ilcm": {"CE": (2.51, 16.4, 37.1, 84.2), "RCE": (2.06, 64.1, 77.8, 93.9)},
        "jsma": {"CE": (1.53, 99.2, 27.3, 85.8), "RCE": (1.40, 99.5, 91.9, 95.4)},
        "cw": {"CE": (0.65, 99.5, 50.2, 95.3), "RCE": (0.77, 99.6, 94.7, 98.2)},
        "cw-hc": {"CE": (0.93, 0.0, 28.8, 75.4), "RCE": (1.81, 0.2, 53.6, 91.8)},
    },
}

#: Table 2: ``TABLE2[dataset][attack][objective]`` -> dict with ``distortion``, ``auc_confidence``,
#: ``auc_non_me``, ``auc_kdensity``.
TABLE2: dict[str, dict[str, dict[str, dict[str, float]]]] = {
    ds: {
        atk: {
            obj: {"distortion": v[0], "auc_confidence": v[1] / 100, "auc_non_me": v[2] / 100, "auc_kdensity": v[3] / 100}
            for obj, v in per_obj.items()
        }
        for atk, per_obj in per_atk.items()
    }
    for ds, per_atk in _T2.items()
}
