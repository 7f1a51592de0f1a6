"""A small CNN on scikit-learn's 8x8 digits: (Conv-BatchNorm-ReLU-MaxPool) x 2, then Dense.

The test split is the one ``jaxnet train --data digits`` holds out (stratified 20%, split seed
0, the CLI's defaults); the network trains on the rest (the CLI's training and validation
parts) with random rotations, zooms, shears and stretches, and prints its test accuracy.

    python examples/cnn_digits.py [SEED ...]          # default: seeds 0 1 2; prints the median

Needs the examples extra (scikit-learn ships the digits): pip install 'jaxnet[examples]'.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from jaxnet import cli, nn, optim
from jaxnet import data as D
from jaxnet import train as T

EPOCHS = 50
BATCH = 32


WIDTHS = (32, 64)


def cnn(classes: int = 10, widths=WIDTHS):
    """The network: [N, 8, 8, 1] -> 8x8xW1 -> 4x4xW1 -> 4x4xW2 -> 2x2xW2 -> 4 W2 -> 10 logits."""
    return nn.serial(
        nn.Conv(widths[0], (3, 3), use_bias=False),  # BatchNorm's shift makes a bias redundant
        nn.BatchNorm(),
        nn.Relu(),
        nn.MaxPool((2, 2)),
        nn.Conv(widths[1], (3, 3), use_bias=False),
        nn.BatchNorm(),
        nn.Relu(),
        nn.MaxPool((2, 2)),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Dense(classes),
    )


def digits_split():
    """``(train, test)`` as images [N, 8, 8, 1] in [0, 1]: the CLI's test split; train = its train + val parts."""
    settings = {"data": "digits", "split_seed": 0, "val": 0.1, "test": 0.2, "normalize": "none"}
    train, val, test, _ = cli.load_data(settings)
    as_images = lambda x: x.reshape(-1, 8, 8, 1)  # noqa: E731
    x = jnp.concatenate([train[0], val[0]])
    y = jnp.concatenate([train[1], val[1]])
    return (as_images(x), y), (as_images(test[0]), test[1])


def run(seed: int, epochs: int = EPOCHS, *, widths=WIDTHS, progress: bool = False) -> float:
    """Train the CNN with ``seed`` and return its test accuracy."""
    train, test = digits_split()
    steps = epochs * (train[0].shape[0] // BATCH)
    optimizer = optim.adam(optim.warmup_cosine_decay(3e-3, steps // 20, steps))
    augment = D.make_augment(rotation=0.25, zoom=1.12, shear=0.15, stretch=1.1)
    model = cnn(widths=widths)
    result = T.fit(
        model,
        "softmax_cross_entropy_with_integer_labels",
        optimizer,
        train,
        epochs=epochs,
        batch_size=BATCH,
        key=jax.random.PRNGKey(seed),
        augment=augment,
        progress=progress,
        epochs_per_call=epochs,
    )
    logs = T.evaluate(
        model,
        "softmax_cross_entropy_with_integer_labels",
        result.params,
        result.state,
        test,
        metrics={"accuracy": nn.accuracy},
    )
    return logs["accuracy"]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(seeds=(0, 1, 2), **kwargs) -> float:
    accs = []
    for seed in seeds:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        accs.append(run(seed, **kwargs))
        print(
            f"seed {seed}: test accuracy {accs[-1]:.4f}  ({time.perf_counter() - t0:.1f} s wall, "
            f"{_cpu_seconds() - c0:.1f} s CPU)",
            flush=True,
        )
    median = statistics.median(accs)
    print(f"median test accuracy over {len(accs)} seeds: {median:.4f}")
    return median


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or (0, 1, 2))
