"""K-density scoring speed and accuracy: rce-art vs scikit-learn's KernelDensity (Feinman et al.).

Scores 10,000 query features (64-d, 10 classes) against 1,000 and 6,000 training points
per class, by our detector (one log-sum-exp over a matrix-product squared distance per
class, in torch) and by one scikit-learn ``KernelDensity`` fitted per class (the method of
Feinman et al.'s code), timed side by side in one run. Both are compared with a float64
brute-force log-sum-exp over explicit pairwise differences.

    python benchmarks/kdensity.py            # targets: ratio >= 50x, rel. error <= 1e-4
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from sklearn.neighbors import KernelDensity

import rce_art as ra


def make_features(n_per_class: int, n_queries: int, dim: int, n_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_classes, dim))
    train = np.concatenate([c + rng.normal(size=(n_per_class, dim)) for c in centres]).astype(np.float32)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    q_cls = rng.integers(0, n_classes, size=n_queries)
    queries = (centres[q_cls] + 1.2 * rng.normal(size=(n_queries, dim))).astype(np.float32)
    return train, labels, queries, q_cls


def brute_force(train, labels, queries, q_cls, sigma) -> np.ndarray:
    out = np.empty(len(queries))
    for c in np.unique(q_cls):
        k = torch.as_tensor(train[labels == c], dtype=torch.float64)
        idx = np.flatnonzero(q_cls == c)
        for s in range(0, idx.size, 256):
            q = torch.as_tensor(queries[idx[s : s + 256]], dtype=torch.float64)
            d2 = ((q[:, None, :] - k[None]) ** 2).sum(-1)
            out[idx[s : s + 256]] = (torch.logsumexp(-d2 / sigma**2, 1) - math.log(k.shape[0])).numpy()
    return out


def time_ours(det, queries, q_cls, repeats: int):
    f, c = torch.as_tensor(queries), torch.as_tensor(q_cls)
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        with torch.no_grad():
            out = det.log_density_features(f, c)
        best = min(best, time.perf_counter() - t)
    return best, out.double().numpy()


def time_sklearn(train, labels, queries, q_cls, sigma):
    dim = train.shape[1]
    t = time.perf_counter()
    out = np.empty(len(queries))
    for c in np.unique(q_cls):
        kde = KernelDensity(kernel="gaussian", bandwidth=sigma / math.sqrt(2)).fit(train[labels == c])
        idx = np.flatnonzero(q_cls == c)
        # undo scikit-learn's normalising constant to compare with the paper's unnormalised K-density
        out[idx] = kde.score_samples(queries[idx]) + 0.5 * dim * math.log(math.pi * sigma**2)
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 6000], help="training points per class")
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3, help="repeats of our (fast) scoring; best time kept")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(f"settings: {args.queries} queries, {args.dim}-d, {args.classes} classes, torch threads={torch.get_num_threads()}")
    ok = True
    for n in args.sizes:
        train, labels, queries, q_cls = make_features(n, args.queries, args.dim, args.classes, args.seed)
        det = ra.KDensityDetector(torch.nn.Linear(args.dim, args.classes), bandwidth="auto")
        det.fit_features(torch.as_tensor(train), torch.as_tensor(labels), nb_classes=args.classes)
        sigma = det.bandwidth_
        ref = brute_force(train, labels, queries, q_cls, sigma)
        t_ours, ours = time_ours(det, queries, q_cls, args.repeats)
        t_sk, sk = time_sklearn(train, labels, queries, q_cls, sigma)
        err_ours = float(np.max(np.abs(ours - ref) / np.abs(ref)))
        err_sk = float(np.max(np.abs(sk - ref) / np.abs(ref)))
        ratio = t_sk / t_ours
        ok &= ratio >= 50 and err_ours <= 1e-4
        print(
            f"n_per_class={n:5d} sigma={sigma:.3f}: ours {t_ours:.3f}s, scikit-learn {t_sk:.2f}s, "
            f"speed-up {ratio:.0f}x (target >= 50x); max rel. error vs float64 brute force: "
            f"ours {err_ours:.1e} (target <= 1e-4), scikit-learn {err_sk:.1e}"
        )
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
