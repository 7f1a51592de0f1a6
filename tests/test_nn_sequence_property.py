"""The padded-batch property: with a [batch, time] mask, a padded batch gives at every real position the
outputs (and final states, and parameter gradients of a masked loss) of each sequence run alone.

Padding is filled with large random values, so a padded token that leaked into a real output would show.
The hypothesis versions (random lengths, several seconds each on the 2-core dev machine) are marked slow; one fixed
case per layer runs in the fast suite.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxnet.nn import RNN, Bidirectional, GRUCell, LSTMCell, MultiHeadAttention, SimpleRNNCell, TransformerBlock

T, F = 6, 4
SETTINGS = settings(
    max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
lengths_st = st.lists(st.integers(1, T), min_size=1, max_size=3)


def padded_batch(lengths, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(lengths), T, F))
    mask = np.arange(T)[None] < np.asarray(lengths)[:, None]
    x = np.where(mask[..., None], x, 50.0 * rng.normal(size=x.shape))
    return x, mask


def check_property(layer, lengths, seed, *, sequences=True):
    _, params, state = layer.init(jax.random.PRNGKey(seed), (-1, T, F))
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    x, mask = padded_batch(lengths, seed)
    # one compiled program per shape: far cheaper than compiling every op of an eager apply
    padded = jax.jit(lambda p, x, m: layer.apply(p, state, x, train=False, mask=m)[0])
    alone = jax.jit(lambda p, x: layer.apply(p, state, x, train=False)[0])
    y = padded(params, x, mask)
    for i, n in enumerate(lengths):
        for got, want in zip(jax.tree.leaves(y), jax.tree.leaves(alone(params, x[i : i + 1, :n])), strict=True):
            got = got[i, :n] if (sequences and got.ndim == 3) else got[i]
            np.testing.assert_allclose(got, want[0], rtol=1e-11, atol=1e-11)
        if sequences:
            assert np.all(np.asarray(jax.tree.leaves(y)[0][i, n:]) == 0)  # padded positions output zeros

    def loss_padded(p):
        return jnp.sum(jnp.sin(jax.tree.leaves(padded(p, x, mask))[0]))

    def loss_alone(p):
        return sum(jnp.sum(jnp.sin(jax.tree.leaves(alone(p, x[i : i + 1, :n]))[0])) for i, n in enumerate(lengths))

    chex.assert_trees_all_close(jax.grad(loss_padded)(params), jax.grad(loss_alone)(params), rtol=1e-10, atol=1e-10)


@pytest.mark.slow
@SETTINGS
@given(lengths=lengths_st, seed=st.integers(0, 2**16), causal=st.booleans(), kv=st.sampled_from([1, 2]))
def test_attention(x64, lengths, seed, causal, kv):
    check_property(MultiHeadAttention(2, num_kv_heads=kv, causal=causal, rope=seed % 2 == 0), lengths, seed)


@pytest.mark.slow
@SETTINGS
@given(
    lengths=lengths_st,
    seed=st.integers(0, 2**16),
    cell=st.sampled_from([SimpleRNNCell, LSTMCell, GRUCell]),
    reverse=st.booleans(),
    return_sequences=st.booleans(),
)
def test_recurrent_cells(x64, lengths, seed, cell, reverse, return_sequences):
    layer = RNN(cell(3), return_sequences=return_sequences, reverse=reverse, return_state=True)
    check_property(layer, lengths, seed, sequences=return_sequences)


@pytest.mark.slow
@SETTINGS
@given(lengths=lengths_st, seed=st.integers(0, 2**16), return_sequences=st.booleans())
def test_bidirectional(x64, lengths, seed, return_sequences):
    layer = Bidirectional(
        RNN(LSTMCell(3), return_sequences=return_sequences), RNN(GRUCell(2), return_sequences, reverse=True)
    )
    check_property(layer, lengths, seed, sequences=return_sequences)


@pytest.mark.slow
@settings(SETTINGS, max_examples=4)
@given(lengths=lengths_st, seed=st.integers(0, 2**16), causal=st.booleans(), norm=st.sampled_from(["pre", "post"]))
def test_transformer_block(x64, lengths, seed, causal, norm):
    check_property(TransformerBlock(2, 8, causal=causal, norm=norm, rope=seed % 2 == 1), lengths, seed)


FIXED = {
    "attention_causal_gqa": lambda: MultiHeadAttention(2, num_kv_heads=1, causal=True, rope=True),
    "simple_rnn_reverse": lambda: RNN(SimpleRNNCell(3), reverse=True, return_state=True),
    "lstm_last_step": lambda: RNN(LSTMCell(3), return_sequences=False, return_state=True),
    "gru": lambda: RNN(GRUCell(3), return_state=True),
    "bidirectional": lambda: Bidirectional(RNN(LSTMCell(3)), RNN(GRUCell(2), reverse=True)),
    "transformer_block_post_norm": lambda: TransformerBlock(2, 8, causal=True, norm="post"),
}


@pytest.mark.parametrize("name", list(FIXED))
def test_fixed_lengths(x64, name):
    check_property(FIXED[name](), [T, 2, 5], seed=7, sequences=name != "lstm_last_step")
