"""Figures 1b/c, 2a, 2b, 5/6 and ROC curves of Pang et al. (2018), as PNG files in ``--out/figures``.

- ``tsne.png``: t-SNE of final hidden features of 1,000 test inputs, CE vs RCE (Fig. 1b/c).
- ``accuracy_vs_eps.png``: accuracy under FGSM, BIM, ILCM and JSMA as the perturbation grows (Fig. 2a;
  for JSMA the x-axis is the largest fraction of pixels changed).
- ``cw_distortion.png``: minimal C&W and C&W-hc distortions, CE vs RCE (Fig. 2b).
- ``kdensity_hist.png``: log K-density of normal, RAND and adversarial inputs (Fig. 5/6).
- ``roc.png``: ROC curves of K-density for each attack, CE vs RCE.

    python examples/reproduce_figures.py                      # digits, a few minutes on 2 CPU cores
"""

from __future__ import annotations

import time

import _common as C
import numpy as np

import rce_art as ra

EPS_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)  # multiples of the dataset's default eps
JSMA_GAMMAS = (0.0, 0.02, 0.05, 0.1, 0.2)


def tsne_figure(models, data, args, path) -> None:
    from sklearn.manifold import TSNE

    plt = C.pyplot()
    x, y = C.attack_subset(data, args.tsne_examples, args.seed)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, (objective, clf) in zip(axes, models.items()):
        _, feats = ra.KDensityDetector(clf).extract(x)
        emb = TSNE(n_components=2, init="pca", random_state=args.seed, perplexity=30).fit_transform(feats.numpy())
        ax.scatter(emb[:, 0], emb[:, 1], c=y, cmap="tab10", s=4)
        ax.set_title(f"{objective}: t-SNE of final hidden features")
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout(), fig.savefig(path, dpi=120), plt.close(fig)


def accuracy_vs_eps(models, x, y, args, eps0, path) -> list[dict]:
    plt = C.pyplot()
    records = []
    fig, axes = C.grid_axes(plt, 4, (5, 3.6), ncols=2)
    for ax, name in zip(axes, ("fgsm", "bim", "ilcm", "jsma")):
        grid = JSMA_GAMMAS if name == "jsma" else tuple(f * eps0 for f in EPS_FRACTIONS)
        for objective, clf in models.items():
            accs = []
            for v in grid:
                if v == 0:
                    acc = C.accuracy(clf, x, y)
                else:
                    kw = {"gamma": v} if name == "jsma" else {}
                    attack = ra.build_attack(name, clf, "art", eps=v if name != "jsma" else eps0, seed=args.seed, **kw)
                    acc = C.accuracy(clf, attack.generate(x), y)
                accs.append(acc)
                records.append({"attack": name, "objective": objective, "perturbation": v, "accuracy": acc})
            ax.plot(grid, accs, marker="o", label=objective)
        ax.set_title(name.upper()), ax.set_ylim(0, 1.02), ax.legend()
        ax.set_xlabel("fraction of pixels changed" if name == "jsma" else "eps")
    axes[0].set_ylabel("accuracy")
    fig.tight_layout(), fig.savefig(path, dpi=120), plt.close(fig)
    return records


def main(argv: list[str] | None = None) -> dict:
    parser = C.common_parser(__doc__)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    plt = C.pyplot()
    data = C.load_data(args)
    eps = args.eps if args.eps is not None else C.DEFAULT_EPS[args.dataset]
    n = args.n_examples or 200
    x, y = C.attack_subset(data, n, args.seed)
    print(f"settings: dataset={args.dataset} model={args.model} n_examples={len(x)} eps={eps} "
          f"backend={args.backend} seed={args.seed} C&W={ra.settings.cw_settings(args.paper)}")
    models = C.train_models(args, data)
    fig_dir = args.out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)

    tsne_figure(models, data, args, fig_dir / "tsne.png")
    acc_records = accuracy_vs_eps(models, x, y, args, eps, fig_dir / "accuracy_vs_eps.png")

    names = ("rand", "fgsm", "bim", "ilcm", "jsma", "cw", "cw-hc")
    hist_fig, hist_axes = plt.subplots(1, 2, figsize=(12, 4))
    roc_fig, roc_axes = plt.subplots(1, 2, figsize=(10, 4.5))
    dist = {}
    from sklearn.metrics import roc_curve

    for col, (objective, clf) in enumerate(models.items()):
        with C.threshold_unused():  # AUCs and histograms only
            det = ra.KDensityDetector(clf, seed=args.seed).fit(data.x_train, data.y_train)
        clean = ra.evaluation.metric_scores(det, x)
        hist_axes[col].hist(clean["kdensity"], bins=40, histtype="step", label="normal", density=True)
        for name in names:
            attack = C.build_paper_attack(name, clf, args, eps)
            x_adv = attack.generate(x)
            adv = ra.evaluation.metric_scores(det, x_adv)
            keep = ra.evaluation.kept_pairs(y, clean["predicted_class"], adv["predicted_class"])
            scores = adv["kdensity"] if name == "rand" else adv["kdensity"][keep]
            hist_axes[col].hist(scores, bins=40, histtype="step", label=name.upper(), density=True)
            if name in ("cw", "cw-hc"):
                dist[(name, objective)] = ra.evaluation.distortion(x[keep], x_adv[keep], data.clip_values)
            if name != "rand" and keep.any():
                labels = np.r_[np.zeros(keep.sum()), np.ones(keep.sum())]
                fpr, tpr, _ = roc_curve(labels, -np.r_[clean["kdensity"][keep], adv["kdensity"][keep]])
                roc_axes[col].plot(fpr, tpr, label=f"{name.upper()} (AUC {ra.evaluation.detection_auc(clean['kdensity'][keep], adv['kdensity'][keep]):.3f})")
        hist_axes[col].set_title(f"{objective}: log K-density"), hist_axes[col].legend(fontsize=7)
        roc_axes[col].plot([0, 1], [0, 1], "k:", lw=0.8)
        roc_axes[col].set_title(f"{objective}: K-density ROC"), roc_axes[col].legend(fontsize=7)
        roc_axes[col].set_xlabel("false-positive rate"), roc_axes[col].set_ylabel("true-positive rate")
    hist_fig.tight_layout(), hist_fig.savefig(fig_dir / "kdensity_hist.png", dpi=120), plt.close(hist_fig)
    roc_fig.tight_layout(), roc_fig.savefig(fig_dir / "roc.png", dpi=120), plt.close(roc_fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    labels = [f"{a.upper()}\n{o}" for a in ("cw", "cw-hc") for o in models]
    ax.boxplot([dist[(a, o)] for a in ("cw", "cw-hc") for o in models], showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_ylabel("minimal distortion ([0, 255] scale)"), ax.set_title("C&W minimal distortions")
    fig.tight_layout(), fig.savefig(fig_dir / "cw_distortion.png", dpi=120), plt.close(fig)

    print(ra.evaluation.markdown_table(acc_records, ["attack", "objective", "perturbation", "accuracy"]))
    for (a, o), d in sorted(dist.items()):
        print(f"{a.upper()} ({o}): median minimal distortion {np.median(d):.2f} over {d.size} successful examples")
    ra.evaluation.write_records(acc_records, args.out / f"figure2a-{args.dataset}-{args.model}")
    print(f"figures written to {fig_dir} in {time.perf_counter() - t0:.0f}s")
    return {"accuracy": acc_records, "distortion": {f"{a}/{o}": float(np.median(d)) for (a, o), d in dist.items()}}


if __name__ == "__main__":
    main()
