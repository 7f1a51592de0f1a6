"""An augmentation gallery on scikit-learn's 8x8 digits (§4.4.4).

Each row applies one random transform (one key per image) to the same digits; the last row is
the fused pipeline of ``make_augment``, as the compiled training step would call it.

    python examples/augmentation_gallery.py [OUT_DIR]      # default: out/

Needs the examples extra: pip install 'jaxnet[examples]'.
"""

from __future__ import annotations

import functools
import math
import os
import sys

import jax
import numpy as np

import jaxnet.data as D
from jaxnet.data import augment as A

ROWS = [
    ("original", lambda key, x: x),
    ("rotate U[0, 2pi]", functools.partial(A.rotate, angle_range=(0.0, 2 * math.pi))),
    ("noise |eps| <= 0.25", functools.partial(A.add_noise, eps=0.25, clip=(0.0, 1.0))),
    ("zoom [1/1.6, 1.6]", functools.partial(A.zoom, factor_range=(1 / 1.6, 1.6))),
    ("flip left-right", functools.partial(A.flip_horizontal, p=1.0)),
    ("flip top-bottom", functools.partial(A.flip_vertical, p=1.0)),
    ("shear U[-0.4, 0.4]", functools.partial(A.shear, shear_range=(-0.4, 0.4))),
    ("stretch [1/1.4, 1.4]", functools.partial(A.stretch, factor_range=(1 / 1.4, 1.4))),
    ("make_augment(...)", D.make_augment(rotation=0.3, zoom=1.2, shear=0.2, stretch=1.15, noise=0.05, clip=(0.0, 1.0))),
]


def main(out_dir: str = "out", n_images: int = 10) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("this example needs matplotlib: pip install 'jaxnet[examples]'") from e
    os.makedirs(out_dir, exist_ok=True)
    images, labels = D.load_digits(return_images=True)
    # One image of each digit 0..9, so the gallery shows every class.
    pick = np.array([int(np.argmax(np.asarray(labels) == d)) for d in range(n_images)])
    x = images[pick]
    keys = jax.random.split(jax.random.PRNGKey(0), len(ROWS))
    fig, axes = plt.subplots(len(ROWS), n_images, figsize=(n_images * 0.75 + 1.6, len(ROWS) * 0.8), dpi=80)
    for r, ((name, transform), key) in enumerate(zip(ROWS, keys, strict=True)):
        out = np.asarray(jax.jit(transform)(key, x))
        for c in range(n_images):
            ax = axes[r, c]
            ax.imshow(out[c], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Data augmentation on the 8x8 digits (bilinear, constant-0 border)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path = os.path.join(out_dir, "augmentation_gallery.png")
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    path = main(sys.argv[1] if len(sys.argv) > 1 else "out")
    print("wrote", path, os.path.getsize(path), "bytes")
