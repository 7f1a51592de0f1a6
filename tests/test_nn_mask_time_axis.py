"""A [batch, time] mask in serial after a layer removes the time axis: it becomes the [batch] mask."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet.autodiff import backprop
from jaxnet.nn import RNN, Bidirectional, GRUCell, LSTMCell, intermediates, serial
from jaxnet.nn.core import mask_after

LENGTHS = np.array([5, 2, 4])
MASK = jnp.asarray(np.arange(5)[None, :] < LENGTHS[:, None])


def alone(model, params, state, x):
    """Each sample run alone on its real tokens, without a mask."""
    return jnp.concatenate(
        [model.apply(params, state, x[i : i + 1, :n], train=False)[0] for i, n in enumerate(LENGTHS)]
    )


def padded(x, seed=0):
    """``x`` with its padded tokens replaced by garbage: a real output must not change."""
    noise = jax.random.normal(jax.random.PRNGKey(seed), x.shape) * 100
    return jnp.where(MASK[..., None], x, noise)


@pytest.mark.parametrize(
    "rnn",
    [
        RNN(LSTMCell(4), return_sequences=False),
        RNN(GRUCell(4), return_sequences=False),
        Bidirectional(RNN(GRUCell(3), return_sequences=False), RNN(GRUCell(3), return_sequences=False, reverse=True)),
    ],
    ids=["lstm", "gru", "bidirectional-gru"],
)
def test_classifier_after_a_last_step_rnn(rnn):
    model = serial(rnn, jn.Dense(2))
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5, 3))
    x = padded(jax.random.normal(jax.random.PRNGKey(1), (3, 5, 3)))
    logits, _ = model.apply(params, state, x, train=False, mask=MASK)  # raised before the fix
    assert logits.shape == (3, 2)
    np.testing.assert_allclose(logits, alone(model, params, state, x), rtol=1e-5, atol=1e-6)
    # gradients flow and ignore the padding
    grad = jax.grad(lambda p, x: jnp.sum(model.apply(p, state, x, train=False, mask=MASK)[0]))
    g1, g2 = grad(params, x), grad(params, padded(x, seed=7))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g1, g2)


def test_gru_token_classifier_with_embedding():
    model = serial(jn.Embedding(9, 4), RNN(GRUCell(6), return_sequences=False), jn.Dense(3))
    _, params, state = model.init(jax.random.PRNGKey(2), (-1, 5))
    tokens = jax.random.randint(jax.random.PRNGKey(3), (3, 5), 0, 9)
    logits, _ = model.apply(params, state, tokens, train=False, mask=MASK)
    np.testing.assert_allclose(logits, alone(model, params, state, tokens), rtol=1e-5, atol=1e-6)
    outs = intermediates(model, params, state, tokens, train=False, mask=MASK)  # the same rule
    np.testing.assert_allclose(outs[-1], logits)


def test_batchnorm_after_the_rnn_gets_the_sample_mask():
    """A sample with no real token is left out of the batch statistics: the mask became [batch]."""
    model = serial(RNN(GRUCell(4), return_sequences=False), jn.BatchNorm(momentum=1.0))
    _, params, state = model.init(jax.random.PRNGKey(4), (-1, 5, 3))
    x = jax.random.normal(jax.random.PRNGKey(5), (3, 5, 3))
    mask = MASK.at[1].set(False)  # sample 1 is all padding
    _, new_state = model.apply(params, state, x, train=True, mask=mask)
    h, _ = model.layers[0].apply(params["rnn_0"], {}, x, train=False, mask=mask)
    real = np.asarray(h)[[0, 2]]
    bn_state = new_state["batchnorm_1"]
    np.testing.assert_allclose(bn_state["mean"], real.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn_state["var"], real.var(axis=0, ddof=1), rtol=1e-4, atol=1e-6)


def test_mask_after_rule():
    m = MASK
    seq = jnp.zeros((3, 5, 7))
    assert mask_after(m, seq, jnp.zeros((3, 5, 2))) is m  # tokens kept
    assert mask_after(m, jnp.zeros((3, 5), jnp.int32), seq) is m  # an embedding adds an axis
    assert mask_after(None, seq, jnp.zeros((3, 2))) is None
    assert mask_after(m[:, 0], seq, jnp.zeros((3, 2))).shape == (3,)
    # [batch, time, features] -> [batch, hidden] with hidden == time: the time axis is gone all the same
    reduced = mask_after(m.at[1].set(False), seq, jnp.zeros((3, 5)))
    np.testing.assert_array_equal(reduced, [True, False, True])
    weights = jnp.asarray([[0.0, 0.5, 0, 0, 0], [0.0] * 5, [1.0] * 5])
    np.testing.assert_array_equal(mask_after(weights, seq, jnp.zeros((3, 2))), [True, False, True])


def test_wrong_masks_still_raise():
    model = serial(RNN(GRUCell(4), return_sequences=False), jn.Dense(2))
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5, 3))
    x = jnp.ones((3, 5, 3))
    with pytest.raises(ValueError, match=r"mask must have shape \[batch\] or \[batch, time\].*got \(3, 6\)"):
        model.apply(params, state, x, train=False, mask=jnp.ones((3, 6), bool))
    with pytest.raises(ValueError, match=r"mask must have shape.*got \(4,\)"):
        model.apply(params, state, x, train=False, mask=jnp.ones((4,), bool))
    dense = jn.Dense(2)  # a [batch, time] mask given to a layer whose input has no time axis
    _, dp, _ = dense.init(jax.random.PRNGKey(0), (-1, 4))
    with pytest.raises(ValueError, match=r"Dense\(2\)\.apply: mask must have shape"):
        dense.apply(dp, {}, jnp.ones((3, 4)), train=False, mask=jnp.ones((3, 5), bool))


def test_handwritten_backprop_follows_the_same_rule():
    """Embedding -> Flatten -> Dense with a token mask: serial and the handwritten chain rule agree."""
    model = serial(jn.Embedding(9, 2), jn.Flatten(), jn.Dense(3), jn.BatchNorm())
    _, params, state = model.init(jax.random.PRNGKey(6), (-1, 5))
    tokens = jax.random.randint(jax.random.PRNGKey(7), (3, 5), 0, 9)
    y = jnp.asarray([0, 2, 1])
    mask = MASK.at[1].set(False)
    loss = "softmax_cross_entropy_with_integer_labels"

    def f(p):
        out, _ = model.apply(p, state, tokens, train=True, mask=mask)
        return jn.nn.get_loss(loss)(out, y)

    value, grads = backprop(model, params, state, tokens, y, loss, train=True, mask=mask)
    ref_value, ref_grads = jax.value_and_grad(f)(params)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads, ref_grads)
