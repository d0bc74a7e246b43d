"""Reference numbers reported by the source papers, for printing beside ours: one home for every paper table.

Values are copied from the papers' tables (ResNet-32 unless stated); AUCs and ratios are in [0, 1]
here (the papers print percentages).
"""

from __future__ import annotations

__all__ = [
    "ER_DETECTION",
    "ER_TABLE1_AUTOATTACK",
    "ER_TABLE2_CW",
    "ER_TABLE3_RAYS",
    "LEMESLE_TABLE2_ACCURACY",
    "LEMESLE_TABLE3_AUC",
    "PDM_TABLE1_ACCURACY",
    "PDM_TABLE2_AUC",
    "PDM_TABLE3_DISTORTION",
    "PDM_TABLE4_AUC",
    "TABLE1_ERROR",
    "TABLE2",
    "TABLE3",
    "TABLE4_CIFAR_AUC",
    "TABLE6_RATIO",
]

TABLE1_ERROR: dict[str, dict[tuple[str, str], float]] = {
    "mnist": {("resnet32", "CE"): 0.38, ("resnet32", "RCE"): 0.29, ("resnet56", "CE"): 0.36, ("resnet56", "RCE"): 0.32},
    "cifar10": {("resnet32", "CE"): 7.13, ("resnet32", "RCE"): 7.02, ("resnet56", "CE"): 6.49, ("resnet56", "RCE"): 6.60},
}
"""Pang et al. Table 1: test error rates (%) by (model, objective)."""

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
"""Pang et al. Table 2: ``TABLE2[dataset][attack][objective]`` -> dict with ``distortion``, ``auc_confidence``, ``auc_non_me``, ``auc_kdensity``."""

TABLE3: dict[str, dict[str, tuple[float, float]]] = {
    "mnist": {"CE": (0.01, 17.12), "RCE": (0.77, 31.59)},
    "cifar10": {"CE": (0.00, 1.26), "RCE": (0.12, 3.89)},
}
"""Pang et al. Table 3 (C&W-wb): ``TABLE3[dataset][objective] = (ratio of f2 > 0, mean distortion)``."""

TABLE6_RATIO: dict[str, dict[str, float]] = {"mnist": {"CE": 1.0, "RCE": 1.0}, "cifar10": {"CE": 1.0, "RCE": 1.0}}
"""Pang et al. Table 6 (high-confidence C&W-wb, kappa = 5): ratio of f2 > 0."""

TABLE4_CIFAR_AUC: dict[tuple[str, str], float] = {
    ("CE", "CE"): 0.750, ("RCE", "CE"): 0.908, ("CE", "RCE"): 0.891, ("RCE", "RCE"): 0.849,
}
"""Pang et al. Table 4 (CIFAR-10, K-density AUC) keyed by (substitute, target); on MNIST all four are > 0.95."""

PDM_TABLE1_ACCURACY: dict[str, tuple[float, ...]] = {"mnist": (99.33, 99.32, 99.37, 99.52),
                                                      "cifar10": (93.62, 93.3, 94.37, 93.81)}
"""PDM paper Table 1: clean accuracy (%) of (CE, RCE, Siamese+RVL, PDM)."""

PDM_TABLE2_AUC: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fgsm-0.05": ((0.981, 0.983, 0.988), (0.958, 0.898, 0.967)),
    "fgsm-0.1": ((0.988, 0.99, 0.995), (0.971, 0.926, 0.983)),
    "bim-0.05": ((0.983, 0.967, 0.987), (1.0, 0.99, 0.95)),
    "bim-0.1": ((0.945, 0.92, 0.99), (1.0, 0.996, 0.962)),
    "cw": ((0.994, 1.0, 1.0), (0.874, 0.918, 0.933)),
    "cw-hc": ((0.88, 0.98, 1.0), (0.637, 0.94, 1.0)),
    "jsma": ((0.995, 1.0, 1.0), (0.952, 0.96, 0.973)),
}
"""PDM paper Table 2 (gray-box K-density AUC): per attack, ((Baseline, RCE, PDM) MNIST, (...) CIFAR-10)."""

PDM_TABLE3_DISTORTION: dict[str, tuple[float, ...]] = {"mnist": (0.087, 0.104, 0.162), "cifar10": (0.008, 0.019, 0.026)}
"""PDM paper Table 3 (white-box distortion, pixels in [0, 1]) of (Baseline, RCE, PDM)."""

PDM_TABLE4_AUC: dict[str, tuple[float, ...]] = {"mnist": (0.88, 0.94, 0.99), "cifar10": (0.93, 0.933, 0.952)}
"""PDM paper Table 4 (black-box K-density AUC) of (Baseline, RCE, PDM)."""


# Lemesle & Vernade (report, CIFAR-10, ResNet-32): Table 2 test accuracy (%) and Table 3 K-density ROC-AUC (%)
# on the last hidden layer; the eps of Table 3 is not given.
LEMESLE_TABLE2_ACCURACY: dict[str, float] = {"CE": 93.13, "RCE": 92.94, "OVM": 91.5}
LEMESLE_TABLE3_AUC: dict[str, dict[str, float]] = {
    "CE": {"fgsm": 88.4, "bim": 99.9, "pgd": 99.9},
    "RCE": {"fgsm": 85.7, "bim": 99.6, "pgd": 98.4},
    "OVM": {"fgsm": 73.1, "bim": 83.9, "pgd": 77.2},
}


# Li et al., ER-Classifier (accuracy %, the paper's MNIST / CIFAR10 / STL10 / Tiny ImageNet columns).
ER_TABLE1_AUTOATTACK: dict[str, dict[str, float]] = {
    "Madry": {"mnist": 69.0, "cifar10": 35.6, "stl10": 21.0, "tiny": 9.70},
    "ER-Classifier": {"mnist": 79.0, "cifar10": 47.2, "stl10": 25.3, "tiny": 11.1},
}
"""Table 1: AutoAttack (l_inf; eps 0.3 / 0.03 / 0.03 / 0.01), 1,000 random test samples."""
ER_TABLE2_CW: dict[str, float] = {"Defense-GAN": 55.0, "ER-Classifier": 99.1}
"""Table 2: MNIST accuracy under C&W-L2 with the l2 bound 0.005 (Defense-GAN's number quoted from Athalye et al.)."""
ER_TABLE3_RAYS: dict[str, float] = {"mnist": 75.8, "cifar10": 51.0, "stl10": 34.4, "tiny": 21.7}
"""Table 3: ER-Classifier's accuracy under RayS (l_inf, 1,000 samples, 10,000 queries)."""

_KLE = ("KD", "LID", "ER1", "ER2")
ER_DETECTION: dict[tuple[str, str, str, str], dict[str, float]] = {}
"""Tables 5-8: ``(dataset, trained on, tested on, metric) -> {"KD", "LID", "ER1", "ER2"}`` in %; metric
``"acc_nadv"`` or ``"acc_com"``; attacks ``"pgd"``, ``"fgsm"``, ``"cw"``."""
for _ds, _rows in {
    "mnist": [("pgd", "pgd", (90.71, 91.24, 97.41, 97.94), (29.87, 28.12, 63.81, 44.13)),
              ("fgsm", "fgsm", (92.99, 89.78, 94.82, 96.49), (78.46, 58.33, 81.15, 76.70)),
              ("cw", "cw", (86.39, 88.15, 95.97, 98.66), (100.00, 52.38, 99.91, 100.00)),
              ("fgsm", "pgd", (81.41, 89.56, 99.91, 99.66), (51.23, 28.58, 60.09, 41.87)),
              ("fgsm", "cw", (80.28, 57.48, 93.62, 94.34), (100.00, 11.18, 100.00, 100.00)),
              ("pgd", "fgsm", (97.42, 91.18, 77.98, 92.09), (57.05, 47.28, 99.10, 82.31)),
              ("pgd", "cw", (90.58, 81.33, 88.99, 91.12), (10.05, 27.01, 100.00, 100.00)),
              ("cw", "fgsm", (95.95, 78.82, 97.78, 98.84), (67.63, 21.87, 76.65, 56.94)),
              ("cw", "pgd", (87.12, 88.31, 99.99, 99.94), (39.21, 13.99, 58.89, 40.07))],
    "cifar10": [("pgd", "pgd", (94.56, 94.86, 98.44, 97.54), (29.33, 79.30, 80.49, 86.78)),
                ("fgsm", "fgsm", (93.01, 92.74, 97.62, 97.69), (50.04, 58.17, 59.82, 61.60)),
                ("cw", "cw", (88.76, 91.86, 92.13, 93.45), (100.00, 82.03, 100.00, 100.00)),
                ("fgsm", "pgd", (98.71, 90.36, 99.98, 99.91), (23.71, 60.90, 63.86, 72.20)),
                ("fgsm", "cw", (94.53, 46.06, 88.79, 88.48), (10.06, 87.65, 100.00, 100.00)),
                ("pgd", "fgsm", (97.89, 94.97, 98.19, 97.54), (40.37, 36.63, 59.13, 60.86)),
                ("pgd", "cw", (89.18, 84.41, 81.70, 79.07), (100.00, 10.06, 100.00, 100.00)),
                ("cw", "fgsm", (85.73, 86.86, 100.00, 99.84), (60.89, 52.07, 56.31, 59.91)),
                ("cw", "pgd", (94.22, 87.54, 100.00, 99.98), (29.72, 19.37, 53.05, 68.18))],
}.items():
    for _tr, _te, _nadv, _com in _rows:
        ER_DETECTION[(_ds, _tr, _te, "acc_nadv")] = dict(zip(_KLE, _nadv))
        ER_DETECTION[(_ds, _tr, _te, "acc_com")] = dict(zip(_KLE, _com))
