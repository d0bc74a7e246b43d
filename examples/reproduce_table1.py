"""Table 1 of Pang et al. (2018): test error rates of CE- and RCE-trained networks.

    python examples/reproduce_table1.py                                   # digits, small CNN, seconds
    python examples/reproduce_table1.py --dataset mnist --data-dir D --model resnet32 --paper
"""

from __future__ import annotations

import _common as C

import rce_art as ra
from rce_art.evaluation.paper_values import TABLE1_ERROR


def main(argv: list[str] | None = None) -> list[dict]:
    args = C.common_parser(__doc__).parse_args(argv)
    data = C.load_data(args)
    epochs = C.default_epochs(args, len(data.x_train))
    print(f"settings: dataset={args.dataset} model={args.model} epochs={epochs} seed={args.seed} "
          f"train={len(data.x_train)} test={len(data.x_test)} ({'paper' if args.paper else 'quick'} training length)")
    models = C.train_models(args, data)
    records = []
    for objective, clf in models.items():
        err = 100.0 * (1.0 - C.accuracy(clf, data.x_test, data.y_test))
        paper = {ds: TABLE1_ERROR[ds].get((args.model, objective), float("nan")) for ds in TABLE1_ERROR}
        records.append({"objective": objective, "model": args.model, "dataset": args.dataset, "test_error_%": err,
                        "paper_mnist_%": paper["mnist"], "paper_cifar10_%": paper["cifar10"]})
    print(ra.evaluation.markdown_table(records, ["model", "objective", "dataset", "test_error_%", "paper_mnist_%",
                                      "paper_cifar10_%"], digits=2))
    gap = records[1]["test_error_%"] - records[0]["test_error_%"]
    print(f"claim 'RCE is as accurate as CE': RCE - CE = {gap:+.2f} points -> "
          f"{'holds' if gap <= 1.0 else 'does NOT hold'} on this run (tolerance 1 point)")
    ra.evaluation.write_records(records, args.out / f"table1-{args.dataset}-{args.model}")
    return records


if __name__ == "__main__":
    main()
