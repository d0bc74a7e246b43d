"""Cost of the standard worst-case ensemble, measured side by side in one run (ratios; machines are noisy).

For a small CNN with a K-density detector, on digits (8x8) and Fashion-MNIST-shaped inputs (28x28, seeded
synthetic images and a briefly trained network: the cost does not depend on the data):

- **wrapper overhead**: one forward + backward of the detector-as-extra-class system vs one of the detector's own
  differentiable score (``logits_and_score``). Target: <= 1.1x (the wrapper adds a max and a few elementwise ops).
- **ensemble efficiency**: the standard ensemble's wall time vs (its gradient evaluations x the system's measured
  forward + backward time per input). Target: <= 1.3x. Also printed: wall time and gradient evaluations per input,
  and the same ratio for each member alone (the toolkits' per-call overheads show up here).

    python benchmarks/worst_case.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from _timing import best

import rce_art as ra
from rce_art.evaluation import WorstCaseEnsemble


def setup(shape: tuple[int, ...], n_train: int, seed: int):
    rng = np.random.default_rng(seed)
    if shape[-1] == 8:
        d = ra.load_dataset("digits")
        x_train, y_train, x_test, y_test = d.x_train, d.y_train, d.x_test, d.y_test
    else:
        x_train = rng.uniform(-0.5, 0.5, size=(n_train, *shape)).astype(np.float32)
        y_train = (x_train.reshape(n_train, -1)[:, :10].argmax(1)).astype(np.int64)  # learnable synthetic labels
        x_test = rng.uniform(-0.5, 0.5, size=(600, *shape)).astype(np.float32)
        y_test = x_test.reshape(600, -1)[:, :10].argmax(1).astype(np.int64)
    torch.manual_seed(seed)
    net = ra.SmallCNN(shape[0], 10, width=32 if shape[-1] < 16 else 16, dropout=0.5)
    raw = ra.make_art_classifier(net, shape, 10, (-0.5, 0.5), device_type="cpu")
    clf = ra.CETrainer(raw, epochs=3, batch_size=64, verbose=False).fit(x_train, y_train).classifier
    det = ra.KDensityDetector(clf, seed=seed).fit(x_train, y_train, x_calibration=x_test[:300])
    return det, x_test[300:], y_test[300:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100, help="attacked inputs")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"settings: n={args.n} eps={args.eps} standard={ra.adapters.STANDARD_ENSEMBLE} repeats={args.repeats} (best of) "
          f"torch threads={torch.get_num_threads()}")
    ok = True
    for label, shape in (("digits 8x8", (1, 8, 8)), ("Fashion-MNIST-shaped 28x28", (1, 28, 28))):
        det, x, y = setup(shape, 2000, 0)
        x, y = x[: args.n], y[: args.n]
        system = ra.DetectorAsClass(det)
        xt = torch.as_tensor(x)

        def fb_system():
            xg = xt.clone().requires_grad_(True)
            system(xg).sum().backward()

        def fb_detector():
            xg = xt.clone().requires_grad_(True)
            logits, score = det.logits_and_score(xg)
            (logits.sum() + score.sum()).backward()

        system.eval()  # dropout off in the timed passes, as in the attacks
        t_sys, t_det = best(fb_system, args.repeats), best(fb_detector, args.repeats)
        ok &= t_sys / t_det <= 1.1
        floor = t_sys / len(x)
        print(f"\n{label}: system forward+backward {1e3 * t_sys:.2f} ms per {len(x)} inputs, detector's own score "
              f"{1e3 * t_det:.2f} ms -> wrapper overhead {t_sys / t_det:.2f}x (target <= 1.1x)")
        rows = [("standard ensemble", ra.adapters.standard_ensemble(args.eps))] + [
            (f"  {a.name} alone", [a]) for a in ra.adapters.standard_ensemble(args.eps)]
        for name, attacks in rows:
            t = time.perf_counter()
            r = WorstCaseEnsemble(attacks).run(det, x, y)
            wall = time.perf_counter() - t
            grads = float(r.gradients.sum())
            ratio = wall / (grads * floor) if grads else float("nan")
            if name == "standard ensemble":
                ok &= ratio <= 1.3
            print(f"{name:24s} SR@5 {r.rate()[0]:.2f}  wall {wall / len(x) * 1e3:8.1f} ms/input  "
                  f"gradients {grads / len(x):7.1f}/input  queries {r.queries.mean():7.1f}/input  "
                  f"wall / (gradients x floor) {ratio:6.2f}x" + ("  (target <= 1.3x)" if name == "standard ensemble" else ""))
    print(f"\nall targets met: {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
