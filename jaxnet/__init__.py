"""jaxnet: a JIT-compiled, pure-functional neural-network library on JAX.

Layers are ``init``/``apply`` pairs over parameter pytrees (:mod:`jaxnet.nn`),
optimizers are ``init``/``update`` pairs (:mod:`jaxnet.optim`), data helpers are pure
functions of arrays and keys (:mod:`jaxnet.data`), training compiles with ``jax.jit``
and ``lax.scan`` (:mod:`jaxnet.train`), and :mod:`jaxnet.autodiff` holds the
computational-graph engine and the handwritten backprop. Importing jaxnet compiles
nothing and loads no data.
"""

from jaxnet import autodiff, data, nn, optim, train
from jaxnet._version import __version__
from jaxnet.autodiff import check_grads
from jaxnet.nn import (
    MLP,
    BatchNorm,
    Dense,
    Dropout,
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
from jaxnet.nn.conv import Conv, ConvTranspose
from jaxnet.nn.pooling import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool
from jaxnet.optim import adagrad, adam, adamw, apply_updates, chain, rmsprop, sgd
from jaxnet.train import (
    evaluate,
    fit,
    fit_ensemble,
    load_checkpoint,
    make_eval_step,
    make_train_epoch,
    make_train_step,
    save_checkpoint,
)
from jaxnet.types import Layer, Optimizer

__all__ = [
    "MLP",
    "AvgPool",
    "BatchNorm",
    "Conv",
    "ConvTranspose",
    "Dense",
    "Dropout",
    "Elu",
    "Flatten",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "Identity",
    "Layer",
    "LeakyRelu",
    "LogSoftmax",
    "LogisticRegression",
    "MaxPool",
    "Optimizer",
    "PRelu",
    "Relu",
    "Sigmoid",
    "Softmax",
    "Step",
    "Tanh",
    "__version__",
    "adagrad",
    "adam",
    "adamw",
    "apply_updates",
    "autodiff",
    "chain",
    "check_grads",
    "data",
    "evaluate",
    "fit",
    "fit_ensemble",
    "load_checkpoint",
    "make_eval_step",
    "make_train_epoch",
    "make_train_step",
    "nn",
    "optim",
    "rmsprop",
    "save_checkpoint",
    "serial",
    "sgd",
    "train",
]
