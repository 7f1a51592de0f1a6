"""Layers, activations, initializers, combinators and losses."""

from jaxnet.nn import activations, initializers, losses
from jaxnet.nn.activation_layers import (
    Elu,
    Gelu,
    Identity,
    LeakyRelu,
    LogSoftmax,
    PRelu,
    Relu,
    Sigmoid,
    Silu,
    Softmax,
    Softplus,
    Step,
    Tanh,
    activation_layer,
)
from jaxnet.nn.attention import MultiHeadAttention, attention_weights, dot_product_attention
from jaxnet.nn.batchnorm_window import WindowBatchNorm, window_statistics
from jaxnet.nn.branching import FanInConcat, FanInSum, FanOut, Reshape, parallel, residual
from jaxnet.nn.combinators import MLP, LogisticRegression, intermediates, layer_keys, serial
from jaxnet.nn.conv import Conv, ConvTranspose, conv_channels_last
from jaxnet.nn.decoding import generate
from jaxnet.nn.dense import Dense, Flatten
from jaxnet.nn.dropout import Dropout, dropout_mask
from jaxnet.nn.embedding import Embedding
from jaxnet.nn.layer_norm import LayerNorm, RMSNorm
from jaxnet.nn.losses import (
    accuracy,
    binary_accuracy,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    get_loss,
    mean_squared_error,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
    squared_error,
)
from jaxnet.nn.normalization import BatchNorm
from jaxnet.nn.pooling import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool
from jaxnet.nn.positional import LearnedPositions, SinusoidalPositions, apply_rope, sinusoidal_table
from jaxnet.nn.recurrent import RNN, Bidirectional, GRUCell, LSTMCell, SimpleRNNCell, initial_carry
from jaxnet.nn.summary import ModelSummary, SummaryRow, summary, tree_summary
from jaxnet.nn.transformer import TransformerBlock, transformer_lm
from jaxnet.nn.xor import xor_network, xor_table

__all__ = [
    "MLP",
    "RNN",
    "AvgPool",
    "BatchNorm",
    "Bidirectional",
    "Conv",
    "ConvTranspose",
    "Dense",
    "Dropout",
    "Elu",
    "Embedding",
    "FanInConcat",
    "FanInSum",
    "FanOut",
    "Flatten",
    "GRUCell",
    "Gelu",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "Identity",
    "LSTMCell",
    "LayerNorm",
    "LeakyRelu",
    "LearnedPositions",
    "LogSoftmax",
    "LogisticRegression",
    "MaxPool",
    "ModelSummary",
    "MultiHeadAttention",
    "PRelu",
    "RMSNorm",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Silu",
    "SimpleRNNCell",
    "SinusoidalPositions",
    "Softmax",
    "Softplus",
    "Step",
    "SummaryRow",
    "Tanh",
    "TransformerBlock",
    "WindowBatchNorm",
    "accuracy",
    "activation_layer",
    "activations",
    "apply_rope",
    "attention_weights",
    "binary_accuracy",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv_channels_last",
    "dot_product_attention",
    "dropout_mask",
    "generate",
    "get_loss",
    "initial_carry",
    "initializers",
    "intermediates",
    "layer_keys",
    "losses",
    "mean_squared_error",
    "parallel",
    "residual",
    "serial",
    "sinusoidal_table",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "squared_error",
    "summary",
    "transformer_lm",
    "tree_summary",
    "window_statistics",
    "xor_network",
    "xor_table",
]
