"""Figures 4.11 and 4.12 of §4.3.1, drawn from real measurements (the iris flowers in scikit-learn).

Two correlated features with different means and spreads (sepal length and petal length, in cm)
go through each normalization. The statistics are fitted on a training split only; the test
points (hollow) are transformed with those same training statistics.

    python examples/figures_normalization.py [OUT_DIR]      # default: out/

Needs the examples extra: pip install 'jaxnet[examples]'.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jaxnet.data as D


def load_iris_pair():
    """Sepal length and petal length of the 150 iris flowers, as float64 NumPy arrays."""
    try:
        from sklearn.datasets import load_iris
    except ImportError as e:
        raise ImportError("this example needs scikit-learn: pip install 'jaxnet[examples]'") from e
    bunch = load_iris()
    x = bunch.data[:, [0, 2]]
    return x, bunch.target.astype(np.int32), [bunch.feature_names[0], bunch.feature_names[2]]


def _panel(ax, train, test, title, lim, cov_text=True):
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.axvline(0, color="0.8", lw=0.8, zorder=0)
    ax.scatter(train[:, 0], train[:, 1], s=9, color="tab:blue", alpha=0.75, label="train")
    ax.scatter(
        test[:, 0], test[:, 1], s=14, facecolors="none", edgecolors="tab:purple", lw=0.9, label="test (train stats)"
    )
    c = np.round(np.cov(train.T, bias=True), 2) + 0.0  # + 0.0 turns -0.00 into 0.00
    if cov_text:
        ax.text(
            0.03,
            0.97,
            f"cov = [[{c[0, 0]:.2f}, {c[0, 1]:.2f}],\n       [{c[1, 0]:.2f}, {c[1, 1]:.2f}]]",
            transform=ax.transAxes,
            va="top",
            fontsize=7,
            family="monospace",
        )
    ax.set_title(title, fontsize=10)
    lo, hi = lim if isinstance(lim, tuple) else (-lim, lim)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)


def main(out_dir: str = "out") -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("this example needs matplotlib: pip install 'jaxnet[examples]'") from e
    os.makedirs(out_dir, exist_ok=True)
    x, y, names = load_iris_pair()
    (x_tr, _), (x_te, _) = D.train_test_split(
        jax.random.PRNGKey(0), jnp.asarray(x, jnp.float32), jnp.asarray(y), test=0.2
    )
    s = D.standardize_fit(x_tr)
    p = D.pca_fit(x_tr)
    f = lambda fn, stats: (np.asarray(fn(stats, x_tr)), np.asarray(fn(stats, x_te)))  # noqa: E731
    raw = (np.asarray(x_tr), np.asarray(x_te))
    figures = [
        (
            "normalization_4_11.png",
            "Figure 4.11: zero mean, then unit variance per feature (iris)",
            4.0,
            [
                (raw, "raw (cm)", (-1.0, 8.0)),
                (f(D.center, s), "centred: x - mu", 4.5),
                (f(D.standardize, s), "standardized: (x - mu) / sigma", 3.2),
            ],
        ),
        (
            "normalization_4_12.png",
            "Figure 4.12: a diagonal covariance (decorrelation), then the identity (whitening)",
            3.7,
            [
                (f(D.center, s), "centred", 4.5),
                (f(D.pca_decorrelate, p), "PCA-decorrelated: (x - mu) U", 4.5),
                (f(D.pca_whiten, p), "PCA-whitened", 3.2),
                (f(D.zca_whiten, p), "ZCA-whitened", 3.2),
            ],
        ),
    ]
    paths = []
    for name, title, height, panels in figures:
        fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), height), dpi=80)
        for ax, (data, panel_title, lim) in zip(axes, panels, strict=True):
            _panel(ax, *data, panel_title, lim)
        if panels[0][0] is raw:
            axes[0].set_xlabel(names[0], fontsize=8)
            axes[0].set_ylabel(names[1], fontsize=8)
        axes[0].legend(loc="lower right", fontsize=7)
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        paths.append(os.path.join(out_dir, name))
        fig.savefig(paths[-1])
        plt.close(fig)
    return paths


if __name__ == "__main__":
    for path in main(sys.argv[1] if len(sys.argv) > 1 else "out"):
        print("wrote", path, os.path.getsize(path), "bytes")
