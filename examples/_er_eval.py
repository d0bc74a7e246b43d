"""Evaluations of examples/reproduce_er.py: robustness curves, AutoAttack, C&W-L2, RayS, t-SNE of codes."""

from __future__ import annotations

import argparse
from typing import Any

import _common as C
import numpy as np
import torch

import rce_art as ra
from rce_art.settings import ER_PAPER


def pgd(clf: Any, x: np.ndarray, eps: float, args: argparse.Namespace, steps: int | None = None) -> np.ndarray:
    """ART's l_inf PGD (random start, step eps/4): 40 steps with ``--paper``, else 20 (ours; the paper gives none)."""
    from art.attacks.evasion import ProjectedGradientDescent

    if eps == 0:
        return x
    steps = steps or (40 if args.paper else 20)
    with C.seeded_numpy(args.seed):
        return ProjectedGradientDescent(clf, eps=eps, eps_step=eps / 4, max_iter=steps, num_random_init=1,
                                        batch_size=256, verbose=False).generate(x)


def robustness_curves(models: dict[str, Any], x: np.ndarray, y: np.ndarray, grid: list[float], args, path) -> list[dict]:
    """Figures 3-4: accuracy under l_inf PGD vs eps for every model."""
    records = []
    for name, clf in models.items():
        for eps in grid:
            records.append({"figure": 3, "model": name, "eps": eps, "accuracy": C.accuracy(clf, pgd(clf, x, eps, args), y)})
        print(f"  {name:15s} " + "  ".join(f"{r['accuracy']:.3f}" for r in records if r["model"] == name), flush=True)
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    groups = (("No defence", "Madry", "TRADES", "ER-Classifier", "ER-Classifier-", "ER-TRADES"),
              ("E-CLA", "VAE-CLA", "ER-Classifier-"))
    for ax, names, title in zip(axes, groups, ("Figure 3: defences", "Figure 4: ablation (no min-max)")):
        for name in names:
            pts = [(r["eps"], r["accuracy"]) for r in records if r["model"] == name]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name)
        ax.set_xlabel("eps (l_inf, pixel range 1)"), ax.set_ylabel("accuracy under PGD"), ax.set_title(title)
        ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout(), fig.savefig(path, dpi=120), plt.close(fig)
    return records


def autoattack(clf: Any, x: np.ndarray, y: np.ndarray, eps: float, args) -> tuple[float, np.ndarray, str]:
    """Table 1: ART's AutoAttack. ``--paper``: ART's standard list (APGD-CE/DLR x 5 restarts, DeepFool, Square
    5,000 x 5); quick: APGD-CE and APGD-DLR (100 steps, 1 restart) and Square (1,000 queries, 1 restart)."""
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, SquareAttack

    if args.paper:
        attacks, label = None, "ART AutoAttack, standard attacks"
    else:
        common = {"norm": np.inf, "eps": eps, "eps_step": eps / 4, "max_iter": 100, "nb_random_init": 1,
                  "batch_size": 256, "verbose": False}
        attacks = [AutoProjectedGradientDescent(clf, loss_type="cross_entropy", **common),
                   AutoProjectedGradientDescent(clf, loss_type="difference_logits_ratio", **common),
                   SquareAttack(clf, norm=np.inf, eps=eps, max_iter=1000, nb_restarts=1, verbose=False)]
        label = "ART AutoAttack: APGD-CE, APGD-DLR (100 steps), Square (1,000 queries)"
    with C.seeded_numpy(args.seed):
        x_adv = AutoAttack(clf, norm=np.inf, eps=eps, eps_step=eps / 4, attacks=attacks, batch_size=256).generate(x, y)
    correct = clf.predict(x_adv).argmax(1) == y
    return float(correct.mean()), correct, label


def cw_l2(clf: Any, x: np.ndarray, y: np.ndarray, args) -> dict[str, float]:
    """Table 2: C&W-L2 (untargeted). Accuracy where the attack fails or needs more than the bound 0.005, in both
    readings of "root-mean-square distortion normalised by the number of pixels": ``||d||_2 / D`` (literal)
    and ``||d||_2 / sqrt(D)`` (RMS), with pixels on a unit range. ``--paper``: Athalye et al.'s settings
    (``ER_PAPER["cw"]``, ART); quick: the registry's C&W."""
    if args.paper:
        from rce_art.adapters import build_attack

        attack = build_attack("cw", clf, "art", seed=args.seed, **ER_PAPER["cw"])
    else:
        attack = C.build_paper_attack("cw", clf, args, eps=0.0)
    x_adv = attack.generate(x)
    span = clf.clip_values[1] - clf.clip_values[0]
    d = x[0].size
    l2 = np.sqrt((((x_adv - x) / span) ** 2).reshape(len(x), -1).sum(1))
    fooled = clf.predict(x_adv).argmax(1) != y
    clean_ok = clf.predict(x).argmax(1) == y
    out = {"settings": attack.describe()}
    bound = ER_PAPER["cw_l2_bound"]
    for name, dist in (("l2/D", l2 / d), ("l2/sqrt(D)", l2 / np.sqrt(d))):
        out[name] = float((clean_ok & ~(fooled & (dist <= bound))).mean())
    return out


def rays(clf: Any, x: np.ndarray, y: np.ndarray, eps: float, args) -> tuple[float, np.ndarray, dict]:
    """Table 3: RayS (hard-label l_inf); 10,000 queries with ``--paper``, else 1,000."""
    queries = ER_PAPER["rays_queries"] if args.paper else 1_000
    res = ra.RayS(clf, eps=eps, max_queries=queries, verbose=not args.quiet).run(x, y)
    return float(1 - res.success.float().mean()), ~res.success.numpy(), {
        "max_queries": queries, "mean_queries": float(res.queries.float().mean())}


def tsne_codes(models: dict[str, Any], x: np.ndarray, y: np.ndarray, eps: float, args, path) -> list[dict]:
    """Figures 5-6: t-SNE of the codes of clean and PGD inputs (triangle: attack succeeded, circle: failed)."""
    from sklearn.manifold import TSNE

    plt = C.pyplot()
    fig, axes = C.grid_axes(plt, len(models), (5.5, 5))
    records = []
    for ax, (name, clf) in zip(axes, models.items()):
        x_adv = pgd(clf, x, eps, args)
        model = ra.models.resolve_model(clf).model
        with torch.no_grad(), ra._tensors.eval_mode(model):
            z = model.encode(torch.as_tensor(np.concatenate([x, x_adv]))).numpy()
        emb = TSNE(n_components=2, init="pca", random_state=args.seed, perplexity=30).fit_transform(z)
        n = len(x)
        ok = clf.predict(x_adv).argmax(1) == y
        ax.scatter(emb[:n, 0], emb[:n, 1], c=y, cmap="tab10", s=4, marker=".")
        ax.scatter(emb[n:][ok, 0], emb[n:][ok, 1], c=y[ok], cmap="tab10", s=10, marker="o", alpha=0.4)
        ax.scatter(emb[n:][~ok, 0], emb[n:][~ok, 1], c=y[~ok], cmap="tab10", s=12, marker="v")
        ax.set_title(f"{name}: codes, clean (.) and PGD eps {eps:g} (v fooled, o not)", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        records.append({"figure": 5, "model": name, "pgd_accuracy": float(ok.mean())})
    fig.tight_layout(), fig.savefig(path, dpi=120), plt.close(fig)
    return records
