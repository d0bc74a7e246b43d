"""Before/after measurements of the 0.4 fixes, with whichever rce_art is importable.

Run it with this checkout (0.4) and with a 0.3 checkout on the path, side by side:

    python examples/measure_04_fixes.py
    PYTHONPATH=<a 0.3 checkout> python examples/measure_04_fixes.py

Measures, on digits (small CNN with dropout 0.5, 20 epochs, seed 0):
- BU / KD+BU: the relative change of an input's score between batches of 128, 64 and 1, and the share of clean
  inputs whose flag at 5% FPR changes; the relative difference between the EOT gradients of 8 draws and of 1;
- the realised false-positive rate on unseen clean inputs at a nominal 0.05 when ``fit`` gets no x_calibration;
- LID in float32: queries among the reference points whose estimate is off float64 brute force by more than 1%;
- the activation outputs a layer tap of the pre-activation ResNet-32 sees (31 are computed).
"""

from __future__ import annotations

import time

import numpy as np
import torch

import rce_art as ra


def main() -> None:
    t0 = time.perf_counter()
    torch.manual_seed(0)
    data = ra.load_dataset("digits")
    raw = ra.make_art_classifier(ra.SmallCNN(1, 10, dropout=0.5), data.input_shape, 10, data.clip_values)
    clf = ra.CETrainer(raw, epochs=20, batch_size=64, seed=0).fit(data.x_train, data.y_train).classifier  # 0.3 and 0.4
    x_cal, x_eval = data.x_test[:270], data.x_test[270:]
    print(f"rce_art {ra.__version__} from {ra.__file__}; torch threads {torch.get_num_threads()}")

    # 1. MC-dropout scores and EOT
    bu = ra.BayesianUncertaintyDetector(clf, mc_samples=20, seed=0).fit(data.x_train, data.y_train, x_calibration=x_cal)
    x = x_eval[:128]
    s128 = bu.score(x, batch_size=128)
    s64, s1 = bu.score(x, batch_size=64), bu.score(x, batch_size=1)
    rel = np.median(np.r_[np.abs(s64 - s128), np.abs(s1 - s128)] / np.r_[np.abs(s128), np.abs(s128)].clip(1e-12))
    flips = np.mean([((a < bu.threshold_) != (s128 < bu.threshold_)).mean() for a in (s64, s1)])
    xt, yt = torch.as_tensor(x[:32]), torch.as_tensor(data.y_test[270:302])
    g = [ra.DetectorPGD(0.1, mode="selective", eot_samples=k).gradients(bu, xt, yt)[1] for k in (1, 8)]
    eot = float(((g[1] - g[0]).flatten(1).norm(dim=1) / g[0].flatten(1).norm(dim=1).clamp_min(1e-30)).median())
    print(f"BU: median relative score change across batch sizes 128/64/1: {rel:.3g}; clean inputs changing flag at "
          f"5% FPR: {flips:.3f}; median relative gradient difference, eot_samples 8 vs 1: {eot:.3g}")

    # 2. realised FPR without x_calibration (the threshold sits on training rows)
    rows = []
    fgsm = ra.adapters.build_attack("fgsm", clf, "art", eps=0.2)
    x_fit = data.x_test[:54]
    x_adv = fgsm.generate(x_fit)
    for name, make, combined in (("kd", lambda: ra.KDensityDetector(clf, seed=0), False),
                                 ("bu", lambda: ra.BayesianUncertaintyDetector(clf, mc_samples=20, seed=0), False),
                                 ("lid", lambda: ra.LIDDetector(clf, seed=0), True),
                                 ("mahalanobis", lambda: ra.MahalanobisDetector(clf, seed=0), False),
                                 ("non-me", lambda: ra.NonMEDetector(clf), False)):
        kw = {"x_clean": x_fit, "x_adv": x_adv} if combined else {}
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det = make().fit(data.x_train, data.y_train, **kw)
        rows.append(f"{name} {det.detect(x_eval)[1].mean():.3f}")
    print(f"realised FPR on {len(x_eval)} unseen clean inputs at nominal 0.05 without x_calibration: "
          + ", ".join(rows))

    # 3. LID in float32
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(100, 64, generator=gen) * 3 + 5
    est = ra.detectors.lid_mle(ref.clone(), ref, 20).double()
    d = torch.cdist(ref.double(), ref.double(), compute_mode="donot_use_mm_for_euclid_dist")
    r = d.masked_fill(d == 0, float("inf")).topk(20, largest=False).values
    brute = -20 / torch.log(r / r[:, -1:]).sum(1)
    off = (est / brute - 1).abs()
    print(f"LID float32, 100 queries that are reference points: {int((off > 0.01).sum())} off by > 1% "
          f"(max {float(off.max()):.2f})")

    # 4. layer taps of the pre-activation ResNet
    net = ra.resnet32(1, 10).eval()
    acts = [n for n in ra.detectors.LayerFeatures.called_layers(net, torch.zeros(1, 1, 8, 8))[1:]
            if isinstance(net.get_submodule(n.split("#")[0]), torch.nn.LeakyReLU)]
    print(f"ResNet-32: activation outputs a layer tap sees: {len(acts)} of 31")
    print(f"total time {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
