"""The comparison table of docs/reproductions/ood.md from the report folders ``examples/evaluate_models.py`` wrote.

Per dataset, per training objective (CE, RCE) and detector: the realised false-positive rate and the robust accuracy
with detection under the oblivious attack (classifier-only PGD) and under the standard worst case, at the 5% and 50%
operating points, with Wilson 95% intervals; the diagnostics' WARN count; and, for pytorch-ood's detectors, where the
score's gradient comes from. Reads ``report.json`` only (nothing is recomputed).

    python examples/evaluate_models.py --dataset digits --n-examples 300 --out runs \\
        --detectors kd,lid,mahalanobis,confidence,non-me,ood:msp,ood:energy,ood:maxlogit,ood:mahalanobis,ood:vim,ood:knn
    python examples/ood_table.py --out runs --dataset digits
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _ci(r: dict) -> str:
    return f"{r['rate']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"


def table(folder: Path) -> list[str]:
    """Markdown rows (one per detector and operating point) of one report folder."""
    rep = json.loads((folder / "report.json").read_text())
    out = []
    for row in rep["rows"]:
        d = row["detector"]
        grad = rep["settings"]["detectors"].get(d, {}).get("score_gradient", "")
        for f, p in row["points"].items():
            warns = sum(c["verdict"] == "WARN" for c in rep["diagnostics"][d][f])
            out.append(f"| {d} | {float(f):.0%} | {_ci(p['realised_fpr'])} | {_ci(p['oblivious']['robust_accuracy'])} | "
                       f"{_ci(p['robust_accuracy'])} | {p['top_attack']} | {warns} | {grad} |")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs"), help="the --out of evaluate_models.py")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="small")
    parser.add_argument("--budget", default="standard")
    args = parser.parse_args(argv)
    for objective in ("ce", "rce"):
        folder = args.out / f"evaluate-{args.dataset}-{args.model}-{objective}-{args.budget}"
        if not (folder / "report.json").exists():
            raise SystemExit(f"{folder}/report.json not found: run examples/evaluate_models.py first (see --help)")
        print(f"\n{objective.upper()} ({args.dataset}, {args.model})\n")
        print("| detector | FPR | realised FPR | robust acc, oblivious | robust acc, worst case | broke most | WARN | "
              "score gradient |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(table(folder)))


if __name__ == "__main__":
    main()
