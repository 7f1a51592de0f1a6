"""What every chapter experiment shares: its result record, figure saving, digits data, training, the CLI."""

from __future__ import annotations

import argparse
import functools
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

CE = "softmax_cross_entropy_with_integer_labels"


def claim(text: str, held: bool, measured: str) -> dict:
    """One checked statement of the chapter: ``{"claim", "held", "measured"}`` (``held`` a plain bool)."""
    return {"claim": text, "held": bool(held), "measured": measured}


def new_result(name: str, section: str, title: str) -> dict:
    """An empty experiment result: ``name``, chapter ``section``, ``title``, ``figures``, ``numbers``, ``claims``."""
    return {"name": name, "section": section, "title": title, "figures": [], "numbers": {}, "claims": []}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display).

    Raises:
      ImportError: when matplotlib (the ``examples`` extra) is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the chapter's figures need matplotlib: pip install 'jaxnet[examples]'") from e
    return plt


def save(result: dict, fig, out: str | None, filename: str, caption: str) -> None:
    """Lay out ``fig``, write it as ``out/filename`` (PNG, 100 dpi), list it in ``result["figures"]``; close it."""
    plt = pyplot()
    fig.tight_layout()
    if out is not None:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, filename)
        fig.savefig(path, dpi=100)
        result["figures"].append({"path": path, "caption": caption})
    plt.close(fig)


@functools.lru_cache(maxsize=4)
def digits(seed: int = 0):
    """The digits split 60/20/20 (stratified, fixed by ``seed``): ``(train, val, test)`` pairs, pixels in [0, 1]."""
    from jaxnet import data as D

    x, y = D.load_digits()
    return D.train_val_test_split(jax.random.PRNGKey(seed), x, y, val=0.2, test=0.2, stratify=True)


def train(model, optimizer, data, *, epochs: int, batch_size: int = 64, seed: int = 0, val=None, lr=None, **kw):
    """``jaxnet.train.fit`` without a progress bar or warnings, recording accuracy; returns its ``FitResult``.

    With ``lr`` the optimizer state starts with that learning rate (set as state, as fit's own init
    would draw it from ``seed``): one compiled program serves a whole sweep of learning rates.
    """
    from jaxnet import optim as O
    from jaxnet import train as T
    from jaxnet.nn import losses

    if lr is not None:
        _, params, state = model.init(jax.random.fold_in(jax.random.PRNGKey(seed), 0), (-1, *data[0].shape[1:]))
        kw["init"] = (params, state, O.set_hyperparameter(optimizer.init(params), "learning_rate", lr))
    with warnings.catch_warnings():  # a diverging run is a result here, reported by its numbers
        warnings.simplefilter("ignore", T.NonFiniteWarning)
        return T.fit(
            model,
            kw.pop("loss", CE),
            optimizer,
            data,
            epochs=epochs,
            batch_size=batch_size,
            key=jax.random.PRNGKey(seed),
            validation=val,
            metrics={"accuracy": losses.accuracy},
            progress=False,
            **kw,
        )


def accuracy(model, params, state, data) -> float:
    """Classification accuracy of ``model`` on ``data = (x, y)`` in evaluation mode."""
    out, _ = model.apply(params, state, data[0], train=False)
    return float(jnp.mean(jnp.argmax(out, -1) == data[1]))


def linear_probe(features, labels, test_features=None, test_labels=None, *, steps: int = 500) -> float:
    """Accuracy of multinomial logistic regression (full-batch Adam) on ``features``; on the test pair if given."""
    from jaxnet import optim as O
    from jaxnet.nn import Dense, losses

    # softmax regression: one logit per class (two for a binary problem), weights from zero
    model = Dense(max(int(jnp.max(labels)) + 1, 2), "zeros")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, features.shape[1]))
    mu, sd = jnp.mean(features, 0), jnp.std(features, 0) + 1e-6
    f = (features - mu) / sd
    opt = O.adam(0.05)

    def loss(p):
        out, _ = model.apply(p, state, f, train=False)
        return losses.softmax_cross_entropy_with_integer_labels(out, labels)

    @jax.jit
    def run(p):
        def body(carry, _):
            p, s = carry
            u, s = opt.update(jax.grad(loss)(p), s, p)
            return (O.apply_updates(p, u), s), None

        return jax.lax.scan(body, (p, opt.init(p)), None, length=steps)[0][0]

    params = run(params)
    if test_features is None:
        test_features, test_labels = features, labels
    return accuracy(model, params, state, ((test_features - mu) / sd, test_labels))


def report(result: dict) -> str:
    """The numbers and claims of ``result`` as plain text (what the examples print)."""
    lines = [f"{result['title']} (chapter section {result['section']})"]
    for k, v in result["numbers"].items():
        lines.append(f"  {k}: {fmt(v)}")
    for c in result["claims"]:
        lines.append(f"  [{'held' if c['held'] else 'DID NOT HOLD'}] {c['claim']}: {c['measured']}")
    for f in result["figures"]:
        lines.append(f"  wrote {f['path']}")
    return "\n".join(lines)


def fmt(v: Any) -> str:
    """A number, or a list/dict of them, as short text (4 significant digits)."""
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def main(run: Callable[..., dict], doc: str, argv=None) -> dict:
    """The command line of every example: ``[--out DIR] [--full]``; prints the report and returns the result."""
    name = run.__module__.rsplit(".", 1)[-1]
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--out", default=os.path.join("out", name), help=f"output directory (default: out/{name})")
    p.add_argument("--full", action="store_true", help="the publication-size run (slower) instead of the quick one")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    result = run(quick=not args.full, out=args.out)
    print(report(result))
    print(f"  ({time.perf_counter() - t0:.1f} s)")
    return result


def outcome(fr, model, data) -> tuple[float, bool]:
    """``(accuracy on data, diverged)`` of a ``FitResult``; a diverged run counts as chance (accuracy of a constant)."""
    diverged = fr.history.stop_reason == "nonfinite"
    if diverged:
        return float(jnp.max(jnp.bincount(data[1])) / data[1].shape[0]), True
    return accuracy(model, fr.params, fr.state, data), False


@functools.cache
def mlp(sizes: tuple, activation: str = "relu", **kw) -> Any:
    """``jaxnet.nn.MLP(sizes, activation, **kw)``, one object per distinct argument list.

    ``fit`` caches its compiled program per model and optimizer object, so experiments that
    ask for the same network (and :func:`optimizer`) share one compilation.
    """
    from jaxnet.nn import MLP

    return MLP(list(sizes), activation, **kw)


@functools.cache
def optimizer(name: str, **kw) -> Any:
    """``jaxnet.optim.<name>(**kw)``, one object per distinct argument list (see :func:`mlp`)."""
    from jaxnet import optim as O

    return getattr(O, name)(**kw)


def fit_digits(model, opt, *, epochs: int, batch_size: int = 32, **kw):
    """:func:`train` on the digits' training part with its validation part, batch 32 unless given."""
    tr, va, _ = digits()
    return train(model, opt, tr, epochs=epochs, batch_size=batch_size, val=va, **kw)


def small_digits(n: int = 300) -> tuple:
    """The first ``n`` samples of the digits' training part (small enough to overfit) and the validation part."""
    tr, va, _ = digits()
    return (tr[0][:n], tr[1][:n]), va


def gap(fr, model, data, val) -> tuple[float, float, float, float]:
    """``(train accuracy, validation accuracy, train loss, validation loss)`` of a ``FitResult``, in evaluation mode."""
    from jaxnet.nn import losses

    def loss(d):
        out, _ = model.apply(fr.params, fr.state, d[0], train=False)
        return float(losses.softmax_cross_entropy_with_integer_labels(out, d[1]))

    acc = (accuracy(model, fr.params, fr.state, data), accuracy(model, fr.params, fr.state, val))
    return (*acc, loss(data), loss(val))


def run_example(name: str, argv=None) -> dict:
    """``examples/<name>.py``: run experiment ``jaxnet.chapter.<name>`` from the command line (see :func:`main`)."""
    import importlib

    module = importlib.import_module(f"jaxnet.chapter.{name}")
    return main(module.run, module.__doc__ or "", argv)
