"""Why the protocol ranks confidence by its log-odds: AUCs from float32 probabilities vs log-odds, side by side.

A confident CE network puts probability 1.0 (exactly, in float32) on the predicted class for every logit
margin above ~17. Clean inputs and strong adversarial ones (BIM, C&W-hc) then tie at 1.0 and
``roc_auc_score`` reads 0.5 for a ranking that is really far from chance. rce-art 0.1 ranked by the
probability; 0.2 ranks by ``confidence_log_odds`` (same order, no ties). This script trains the quick start's
CE and RCE models on digits, attacks them with ART's BIM and Foolbox's C&W-hc (paper settings of Table 2,
quick C&W budget) and prints both AUCs and the fraction of tied scores, under the paper's protocol.

    python examples/confidence_ties.py            # about a minute on 2 CPU cores
"""

from __future__ import annotations

import _common as C
import numpy as np

import rce_art as ra


def main(argv: list[str] | None = None) -> list[dict]:
    parser = C.common_parser(__doc__)
    args = parser.parse_args(argv)
    data = C.load_data(args)
    eps = args.eps if args.eps is not None else C.DEFAULT_EPS[args.dataset]
    x, y = C.attack_subset(data, args.n_examples, args.seed)
    print(f"settings: dataset={args.dataset} model={args.model} n_examples={len(x)} eps={eps} seed={args.seed} "
          f"epochs={C.default_epochs(args, len(data.x_train))} C&W={ra.settings.cw_settings(args.paper)}")
    records = []
    for objective, clf in C.train_models(args, data).items():
        with C.threshold_unused():  # AUCs only
            det = ra.KDensityDetector(clf, seed=args.seed).fit(data.x_train, data.y_train)
        clean = ra.evaluation.metric_scores(det, x)
        for name in ("bim", "cw-hc"):
            attack = C.build_paper_attack(name, clf, args, eps)
            adv = ra.evaluation.metric_scores(det, attack.generate(x))
            keep = ra.evaluation.kept_pairs(y, clean["predicted_class"], adv["predicted_class"])
            both = np.r_[clean["confidence"][keep], adv["confidence"][keep]]
            records.append({
                "objective": objective, "attack": name, "pairs": int(keep.sum()),
                "tied_at_1.0": float((both == 1.0).mean()),
                "auc_probability (0.1)": ra.evaluation.detection_auc(clean["confidence"][keep], adv["confidence"][keep]),
                "auc_log_odds (0.2)": ra.evaluation.detection_auc(clean["confidence_log_odds"][keep],
                                                       adv["confidence_log_odds"][keep]),
            })
    print(ra.evaluation.markdown_table(records, ["objective", "attack", "pairs", "tied_at_1.0", "auc_probability (0.1)",
                                      "auc_log_odds (0.2)"]))
    return records


if __name__ == "__main__":
    main()
