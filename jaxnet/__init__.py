"""jaxnet: a JIT-compiled, pure-functional neural-network library on JAX.

Layers are ``init``/``apply`` pairs over parameter pytrees (:mod:`jaxnet.nn`),
optimizers are ``init``/``update`` pairs (:mod:`jaxnet.optim`), and training steps
compile with ``jax.jit`` (:mod:`jaxnet.train`). Importing jaxnet compiles nothing
and loads no data.
"""
from jaxnet import autodiff, data, nn, optim, train
from jaxnet._version import __version__
from jaxnet.nn import (
    MLP,
    Dense,
    Elu,
    Flatten,
    Identity,
    LeakyRelu,
    LogisticRegression,
    LogSoftmax,
    PRelu,
    Relu,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
    serial,
)
from jaxnet.optim import apply_updates, chain, sgd
from jaxnet.train import make_eval_step, make_train_step
from jaxnet.types import Layer, Optimizer

__all__ = [
    "__version__", "autodiff", "data", "nn", "optim", "train", "Layer", "Optimizer",
    "MLP", "Dense", "Elu", "Flatten", "Identity", "LeakyRelu", "LogisticRegression", "LogSoftmax",
    "PRelu", "Relu", "Sigmoid", "Softmax", "Step", "Tanh", "serial",
    "apply_updates", "chain", "sgd", "make_eval_step", "make_train_step",
]
