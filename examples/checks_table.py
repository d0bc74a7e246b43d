"""The verdicts of the checks that test the evaluation itself (docs/results.md), from report folders.

Per detector and operating point of a ``report.json`` written by ``rce_art.evaluate`` (e.g. by
``examples/evaluate_models.py --binarization``): no success left behind, the trivial-substitution bound (at eps and
along the eps curve), Tramer's bound when a reference was given, the binarization test and its inverted form, and the
bootstrap interval of the robust accuracy beside its Wilson interval. Reads ``report.json`` only.

    python examples/evaluate_models.py --dataset digits --n-examples 200 --binarization --out runs \\
        --detectors kd,lid,mahalanobis,confidence,non-me
    python examples/checks_table.py runs/evaluate-digits-small-ce-standard-binarization
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CHECKS = {"no success left behind": "left behind", "trivial substitutes are broken": "substitutes",
          "trivial substitutes are broken along the eps curve": "substitutes (curve)",
          "robust accuracy within Tramer's bound": "Tramer", "binarization test": "binarization",
          "inverted binarization test": "inverted"}


def rows(folder: Path) -> list[str]:
    """Markdown rows: one per detector and operating point."""
    rep = json.loads((folder / "report.json").read_text())
    out = []
    for row in rep["rows"]:
        d = row["detector"]
        for f, p in row["points"].items():
            checks = {c["check"]: c for c in rep["diagnostics"][d][f]}
            cells = []
            for name in CHECKS:
                c = checks.get(name)
                cells.append("-" if c is None else f"{c['verdict']}{_short(name, c['evidence'])}")
            ra, b = p["robust_accuracy"], p.get("bootstrap", {}).get("robust_accuracy")
            boot = "-" if b is None else f"[{b['lo']:.3f}, {b['hi']:.3f}]"
            out.append(f"| {d} | {float(f):.0%} | " + " | ".join(cells)
                       + f" | {ra['rate']:.3f} [{ra['lo']:.3f}, {ra['hi']:.3f}] | {boot} |")
    return out


def _short(name: str, evidence: str) -> str:
    """The number behind a verdict, in a few characters."""
    if name in ("binarization test", "inverted binarization test"):
        return " " + evidence.split(" broken")[0].replace(" binarized inputs", "")  # "k of n"
    if name == "no success left behind":
        return f" ({evidence.split(' inputs')[0]})"
    if name == "trivial substitutes are broken":
        parts = evidence.split(" ")
        return f" ({parts[0]} with, {evidence.split('; ')[1].split(' of them')[0]} missed)"
    return ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="report folders (each with report.json)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (folder / "report.json").exists():
            raise SystemExit(f"{folder}/report.json not found")
        print(f"\n{folder.name}\n")
        print("| detector | FPR | " + " | ".join(CHECKS.values()) + " | robust acc (Wilson) | bootstrap |")
        print("|---|---|" + "---|" * len(CHECKS) + "---|---|")
        print("\n".join(rows(folder)))


if __name__ == "__main__":
    main()
