"""Figures of examples/reproduce_lemesle.py (Lemesle & Vernade, Figures 2-5), as PNG files."""

from __future__ import annotations

from pathlib import Path

import _common as C
import numpy as np


def accuracy_vs_eps(curves: dict[str, dict[str, list[tuple[float, float]]]], path: Path, title: str) -> None:
    """Figure 4: accuracy vs eps, one panel per attack, one line per model (``curves[attack][model]``)."""
    plt = C.pyplot()
    fig, axes = C.grid_axes(plt, len(curves), (4.5, 3.6))
    for ax, (attack, by_model) in zip(axes, curves.items()):
        for model, pts in by_model.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=model)
        ax.set_title(attack.upper()), ax.set_xlabel("eps (pixel range 1)"), ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02), ax.grid(alpha=0.3), ax.legend()
    fig.suptitle(title, fontsize=9), fig.tight_layout(), fig.savefig(path, dpi=120), plt.close(fig)


def grid_figure(values: list[float], robust: np.ndarray, auc: np.ndarray, rho: float, p: float, path: Path,
                title: str) -> None:
    """Figure 5: heat maps of robust accuracy and K-density AUC over (lambda_1, lambda_2), and their scatter."""
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for ax, grid, name in ((axes[0], robust, "robust accuracy (PGD)"), (axes[1], auc, "K-density ROC-AUC (PGD)")):
        im = ax.imshow(grid, origin="lower", cmap="viridis")
        ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
        ax.set_yticks(range(len(values)), [f"{v:g}" for v in values])
        ax.set_xlabel("lambda_2 (logit squeezing)"), ax.set_ylabel("lambda_1 (label smoothing toward RCE)")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w", fontsize=7)
        ax.set_title(name), fig.colorbar(im, ax=ax, fraction=0.046)
    axes[2].scatter(robust.ravel(), auc.ravel())
    axes[2].set_xlabel("robust accuracy (PGD)"), axes[2].set_ylabel("K-density ROC-AUC (PGD)")
    axes[2].set_title(f"Spearman rho = {rho:.3f} (p = {p:.3g})"), axes[2].grid(alpha=0.3)
    fig.suptitle(title, fontsize=9), fig.tight_layout(), fig.savefig(path, dpi=120), plt.close(fig)


def tsne_figure(embeddings: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path, title: str) -> None:
    """Figures 2-3: t-SNE of last hidden features per model, with the Davies-Bouldin index in the title."""
    plt = C.pyplot()
    fig, axes = C.grid_axes(plt, len(embeddings), (3.6, 3.8))
    for ax, (name, (emb, y, dbi)) in zip(axes, embeddings.items()):
        ax.scatter(emb[:, 0], emb[:, 1], c=y, cmap="tab10", s=3)
        ax.set_title(f"{name}\nDavies-Bouldin {dbi:.2f}", fontsize=9), ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title, fontsize=9), fig.tight_layout(), fig.savefig(path, dpi=120), plt.close(fig)
