"""An LSTM, a GRU and a small transformer classifying variable-length sequences with masks.

The task (synthetic, drawn from an explicit key): a sequence of 8 to 32 digits from 1..8, padded at
the end with the id 0 to 32 tokens; its label is 1 when the pair "3 then 7" occurs in it
(about half the sequences have it, a third of them by insertion). Every model reads the padded
batch with a ``[batch, time]`` mask of its real tokens (``ids != 0``), built inside the model from
the ids, so :func:`jaxnet.train.fit` trains it on plain ``(ids, labels)`` arrays:

- LSTM / GRU: ``Embedding -> RNN(cell, return_sequences=False)``; the RNN returns the output of
  each sequence's last *real* step (padded steps keep the carry), then ``Dense(2)``;
- transformer: ``Embedding -> SinusoidalPositions -> TransformerBlock`` (padded keys never attended),
  a mean over the real tokens, then ``Dense(2)``.

The script prints each model's test accuracy beside the majority-class rate, and checks that padding
changes no prediction: the test batch with 16 more padding columns, and a few sequences run alone
without any padding, give the same logits (largest difference printed).

Usage::

    python examples/sequence_classification.py           # quick (about a minute on 2 CPU cores)
    python examples/sequence_classification.py --full    # more data and epochs
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import nn, optim
from jaxnet import train as T
from jaxnet.types import Layer

PAD = 0
DIGITS = 8  # tokens 1..8
PATTERN = (3, 7)
MAX_LEN, MIN_LEN = 32, 8


def make_data(key, n: int, max_len: int = MAX_LEN):
    """``n`` padded sequences ``[n, max_len]`` (int32, 0 = padding) and their labels ``[n]`` (int32).

    A third of the sequences get the pattern inserted at a random real position; the label says
    whether the pattern occurs among the real tokens (inserted or by chance).
    """
    k_tok, k_len, k_ins, k_pos = jax.random.split(key, 4)
    tokens = jax.random.randint(k_tok, (n, max_len), 1, DIGITS + 1)
    lengths = jax.random.randint(k_len, (n,), MIN_LEN, max_len + 1)
    pos = (jax.random.uniform(k_pos, (n,)) * (lengths - 1)).astype(jnp.int32)  # pattern at pos, pos + 1
    insert = jax.random.uniform(k_ins, (n,)) < 1 / 3
    t = jnp.arange(max_len)[None, :]
    tokens = jnp.where(insert[:, None] & (t == pos[:, None]), PATTERN[0], tokens)
    tokens = jnp.where(insert[:, None] & (t == pos[:, None] + 1), PATTERN[1], tokens)
    tokens = jnp.where(t < lengths[:, None], tokens, PAD).astype(jnp.int32)
    pairs = (tokens[:, :-1] == PATTERN[0]) & (tokens[:, 1:] == PATTERN[1])  # padding is never part of one
    return tokens, jnp.any(pairs, axis=1).astype(jnp.int32)


def masked_classifier(body: Layer, head: Layer, *, pool: str) -> Layer:
    """``ids [batch, time] -> logits``: ``body`` with the mask ``ids != PAD``, a pooling, then ``head``.

    ``pool="last"``: ``body`` already returns ``[batch, features]`` (an RNN with
    ``return_sequences=False``); ``pool="mean"``: the mean of ``body``'s ``[batch, time, features]``
    over the real tokens. The head never sees the token mask (it has no time axis).
    """

    def init(key, input_shape):
        k_body, k_head = jax.random.split(key)
        shape, p_body, s_body = body.init(k_body, input_shape)
        shape = shape if pool == "last" else (shape[0], shape[-1])
        out, p_head, s_head = head.init(k_head, shape)
        return out, {"body": p_body, "head": p_head}, {"body": s_body, "head": s_head}

    def apply(params, state, ids, *, key=None, train, mask=None):
        real = ids != PAD
        if mask is not None:  # fit's [batch] mask of real samples (a padded last batch)
            real = real & (jnp.asarray(mask) > 0).reshape(-1, *([1] * (real.ndim - 1)))
        h, s_body = body.apply(params["body"], state["body"], ids, key=key, train=train, mask=real)
        if pool == "mean":
            w = real[..., None].astype(h.dtype)
            h = jnp.sum(h * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0)
        y, s_head = head.apply(params["head"], state["head"], h, train=train)
        return y, {"body": s_body, "head": s_head}

    return Layer(init, apply, name=f"masked_classifier({body!r}, {head!r}, pool={pool!r})")


def models(width: int = 32) -> dict:
    """The three classifiers, by name."""
    embed = lambda: nn.Embedding(DIGITS + 1, 16)  # noqa: E731
    return {
        "LSTM": masked_classifier(
            nn.serial(embed(), nn.RNN(nn.LSTMCell(width), return_sequences=False)), nn.Dense(2), pool="last"
        ),
        "GRU": masked_classifier(
            nn.serial(embed(), nn.RNN(nn.GRUCell(width), return_sequences=False)), nn.Dense(2), pool="last"
        ),
        "transformer": masked_classifier(
            nn.serial(
                nn.Embedding(DIGITS + 1, width),
                nn.SinusoidalPositions(),
                nn.TransformerBlock(4, 2 * width),
                nn.LayerNorm(),
            ),
            nn.Dense(2),
            pool="mean",
        ),
    }


def padding_difference(model: Layer, params, state, x) -> float:
    """Largest change of the logits when ``x`` gets 16 more padding columns, or a few rows run unpadded."""
    logits, _ = model.apply(params, state, x, train=False)
    wider, _ = model.apply(params, state, jnp.pad(x, ((0, 0), (0, 16))), train=False)
    diff = float(jnp.max(jnp.abs(wider - logits)))
    lengths = np.asarray(jnp.sum(x != PAD, axis=1))
    for i in range(3):
        alone, _ = model.apply(params, state, x[i : i + 1, : lengths[i]], train=False)
        diff = max(diff, float(jnp.max(jnp.abs(alone[0] - logits[i]))))
    return diff


def run(name: str, model: Layer, train, test, *, epochs: int, key, batch_size: int = 64, lr: float = 3e-3) -> dict:
    """Train ``model`` on ``train`` and return its test accuracy and padding difference."""
    steps = epochs * (train[0].shape[0] // batch_size)
    optimizer = optim.adam(optim.warmup_cosine_decay(lr, max(steps // 20, 1), steps))
    loss = "softmax_cross_entropy_with_integer_labels"
    t0 = time.perf_counter()
    fitted = T.fit(
        model, loss, optimizer, train, epochs=epochs, batch_size=batch_size, key=key, progress=False,
        epochs_per_call=epochs,
    )  # fmt: skip
    acc = T.evaluate(model, loss, fitted.params, fitted.state, test, metrics={"accuracy": nn.accuracy})["accuracy"]
    diff = padding_difference(model, fitted.params, fitted.state, test[0][:256])
    return {"accuracy": acc, "padding_difference": diff, "seconds": time.perf_counter() - t0}


def main(argv=None) -> dict:
    """Train and test the three models; return ``name -> {"accuracy", "padding_difference", "seconds"}``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="more data and epochs")
    p.add_argument("--train", type=int, default=None, help="training sequences (default 4096; --full 16384)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 8; --full 20)")
    p.add_argument("--models", default="LSTM,GRU,transformer", help="comma-separated subset of the models")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    n_train = args.train or (16384 if args.full else 4096)
    epochs = args.epochs or (20 if args.full else 8)
    k_train, k_test, k_fit = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    train, test = make_data(k_train, n_train), make_data(k_test, 2048)
    majority = max(float(jnp.mean(test[1])), 1 - float(jnp.mean(test[1])))
    print(f"{n_train} training and {test[0].shape[0]} test sequences; majority class {majority:.3f} of the test set")
    results = {}
    for name, model in models().items():
        if name not in args.models.split(","):
            continue
        results[name] = r = run(name, model, train, test, epochs=epochs, key=k_fit)
        print(
            f"{name:<12s} test accuracy {r['accuracy']:.3f}   padding changes the logits by at most "
            f"{r['padding_difference']:.1e}   ({r['seconds']:.0f} s)",
            flush=True,
        )
    results["majority"] = majority
    return results


if __name__ == "__main__":
    main()
