"""The review run of rce-art 0.6 (issue 27): what the report's numbers were in 0.5 and are in 0.6, on the same run.

Digits, a CE small CNN (10 epochs), a K-density detector fitted with its own ``fpr=0.1`` and the ``confidence``
detector by name, 120 attacked test inputs, the standard worst case at eps 0.1 at the default operating points (5%
and 50%), diagnostics on. Per detector and operating point it prints, from the per-input records of the report:
0.5's "robust accuracy with rejection" (= the attack-failure rate, 1 - all-inputs SR), the robust accuracy with
detection, how many clean-flagged inputs 0.5's number counted robust, SR over the served inputs, the realised FPR at
the threshold attacked, "broke most", and the ROC AUC of clean scores against the scores the report draws (0.5:
the input itself for every unbroken input; 0.6: the attacks' best attempt).

    python examples/measure_06_report.py --out runs/review-06          # about 4 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import rce_art as ra


def run(out: Path) -> None:
    torch.manual_seed(0)
    data = ra.load_dataset("digits")
    raw = ra.make_art_classifier(ra.SmallCNN(1, 10), data.input_shape, 10, data.clip_values)
    clf = ra.CETrainer(raw, epochs=10, lr=0.1, batch_size=64, seed=0, verbose=False).fit(
        data.x_train, data.y_train).get_classifier()
    kd = ra.KDensityDetector(clf, fpr=0.1, seed=0).fit(data.x_train, data.y_train, x_calibration=data.x_test[120:300])
    kw = {"curve_fprs": ()} if "curve_fprs" in ra.evaluate.__code__.co_varnames else {}
    ra.evaluate(clf, {"kd": kd, "confidence": "confidence"}, data.x_test[:120], data.y_test[:120],
                x_calibration=data.x_test[300:], x_fit=data.x_train, y_fit=data.y_train, eps=0.1, out=out,
                verbose=False, **kw)


def analyse(out: Path) -> None:
    r = json.loads((out / "report.json").read_text())
    print(f"report format {r['format']}, rce-art {r['settings']['versions'].get('rce-art')}")
    for d, rec in r["records"].items():
        y = np.asarray(rec["y"])
        correct, clean = np.asarray(rec["clean_pred"]) == y, np.asarray(rec["clean_score"], float)
        for f in r["settings"]["fprs"]:
            t = rec["thresholds"][str(f)]
            w = rec[f"worst@{f}"]
            broken, flagged = np.asarray(w["broken"], bool), clean < t
            served = correct & ~flagged
            auc = roc_auc_score(np.r_[np.zeros(clean.size), np.ones(clean.size)], -np.r_[clean, w["score"]])
            print(f"{d} @{f}: attack-failure rate (0.5's robust accuracy) {1 - broken.mean():.3f}; robust accuracy "
                  f"with detection {(served & ~broken).mean():.3f} ({int((served & ~broken).sum())}/{y.size}); "
                  f"clean-flagged {int(flagged.sum())}, of which counted robust by 0.5 {int((flagged & ~broken).sum())}; "
                  f"SR over served {int((served & broken).sum())}/{int(served.sum())}; AUC clean vs drawn {auc:.3f}")
        for row in r["rows"]:
            if row["detector"] == d and "points" in row:
                for f, p in row["points"].items():
                    print(f"  {d} @{f}: realised FPR {p['realised_fpr']['rate']:.3f} (n {p['realised_fpr']['n']}), "
                          f"broke most {p['top_attack']}, shares {p['broken_by']}, masking {p['masking']}, checks "
                          + ", ".join(c["verdict"] for c in r["diagnostics"][d][f]))
            elif row["detector"] == d:
                print(f"  {d}: realised FPR {row['realised_fpr']['rate']:.3f} at the detector's own threshold only; "
                      f"broke most {row['top_attack']} (first operating point only)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/review-06"))
    p.add_argument("--analyse-only", action="store_true", help="read OUT/report.json (e.g. one written by 0.5)")
    args = p.parse_args()
    if not args.analyse_only:
        run(args.out)
    analyse(args.out)
