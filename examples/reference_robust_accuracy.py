"""A reference robust accuracy at eps/2 for Tramer's bound, measured: a classifier adversarially trained at eps/2.

Tramer (ICML 2022): a detector with robust accuracy (with detection) ``a`` at eps implies an inefficient classifier
with robust accuracy ``a`` at eps/2. ``rce_art.evaluate(..., reference_robust_accuracy=r)`` WARNs where a detector's
interval lies above ``r``, the best known robust accuracy of a classifier at eps/2. For a task without a published
value, this script measures one: Madry PGD training at eps/2 (``ERTrainer(regularizer=None, adversarial="pgd")`` on
the ER-Classifier's small encoder + head), then the per-input worst case of rce-art's APGD-CE and APGD-T (AutoAttack's
targeted DLR over 3 classes) at eps/2 on the test inputs, with its Wilson interval. A value measured this way is a
lower bound of the best achievable, so a WARN against it is a prompt to look, not a proof.

    python examples/reference_robust_accuracy.py --dataset digits                      # eps 0.2 -> 0.1
    python examples/reference_robust_accuracy.py --dataset fashion-mnist --data-dir DIR  # eps 0.1 -> 0.05
"""

from __future__ import annotations

import time

import _common as C
import numpy as np
import torch

import rce_art as ra
from rce_art.attacks import APGD
from rce_art.metrics import wilson_interval


def main(argv: list[str] | None = None) -> float:
    parser = C.common_parser(__doc__)
    parser.add_argument("--pgd-steps", type=int, default=10, help="PGD steps per training batch (ours)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    data = C.load_data(args)
    eps = (args.eps if args.eps is not None else C.DEFAULT_EPS[args.dataset]) / 2
    epochs = args.epochs or C.default_epochs(args, len(data.x_train))
    n = args.n_examples or 500
    print(f"settings: dataset={args.dataset} eps/2={eps} (L-inf, pixel units of {data.clip_values}) "
          f"training=Madry PGD at eps/2, {args.pgd_steps} steps of eps/4, {epochs} epochs, seed {args.seed}; "
          f"attack=APGD-CE then APGD-T (50 iterations each) on {n} test inputs")
    torch.manual_seed(args.seed)
    net = ra.ERClassifier.small(data.input_shape[0], 10, k=64, width=32)
    raw = ra.make_art_classifier(net, data.input_shape, 10, data.clip_values)
    clf = ra.ERTrainer(raw, regularizer=None, adversarial="pgd", pgd_eps=eps, pgd_alpha=eps / 4,
                       pgd_steps=args.pgd_steps, epochs=epochs, seed=args.seed,
                       verbose=not args.quiet).fit(data.x_train, data.y_train).classifier
    x, y = torch.as_tensor(data.x_test[:n]), torch.as_tensor(data.y_test[:n])
    model = torch.nn.Sequential(clf.model).eval()
    robust = np.ones(n, bool)
    for loss in ("ce", "dlr-targeted"):
        r = APGD(eps, "linf", loss, steps=50, n_targets=3, seed=args.seed).run(model, x, y,
                                                                             clip_values=data.clip_values)
        robust &= ~r.success.cpu().numpy()
    k = int(robust.sum())
    lo, hi = wilson_interval(k, n)
    print(f"clean accuracy {C.accuracy(clf, data.x_test, data.y_test):.4f}; robust accuracy at eps/2 = {eps}: "
          f"{k / n:.3f} [{lo:.3f}, {hi:.3f}] ({k} of {n}); total time {time.perf_counter() - t0:.0f}s")
    return k / n


if __name__ == "__main__":
    main()
