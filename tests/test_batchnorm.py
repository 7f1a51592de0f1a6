"""BatchNorm against a float64 NumPy implementation of its formulas, its running statistics,
its gradients and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxnet.nn import BatchNorm

KEY = jax.random.PRNGKey(0)


def np_batchnorm_train(x, gamma, beta, mean, var, momentum, eps, axis):
    """Reference: batch statistics over every axis but ``axis``; PyTorch running-statistics update."""
    axis %= x.ndim
    red = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    m = x.size // x.shape[axis]
    mu = x.mean(axis=red)
    s2 = ((x - mu.reshape(shape)) ** 2).mean(axis=red)
    xhat = (x - mu.reshape(shape)) / np.sqrt(s2.reshape(shape) + eps)
    y = gamma.reshape(shape) * xhat + beta.reshape(shape)
    new_mean = (1 - momentum) * mean + momentum * mu
    new_var = (1 - momentum) * var + momentum * s2 * m / (m - 1)
    return y, new_mean, new_var


@pytest.mark.parametrize("shape, axis", [((16, 5), -1), ((4, 3, 3, 6), -1), ((4, 6, 3, 3), 1)])
def test_training_forward_and_running_update_match_numpy(x64, rng, shape, axis):
    c = shape[axis]
    layer = BatchNorm(momentum=0.3, eps=1e-3, axis=axis, dtype=jnp.float64)
    out_shape, params, state = layer.init(KEY, (-1, *shape[1:]))
    assert out_shape == (-1, *shape[1:])
    # Non-trivial gamma, beta and running statistics, so every term of the formulas shows.
    params = {"gamma": jnp.asarray(rng.uniform(0.5, 2, c)), "beta": jnp.asarray(rng.normal(size=c))}
    state = {"mean": jnp.asarray(rng.normal(size=c)), "var": jnp.asarray(rng.uniform(0.5, 2, c))}
    x = rng.normal(2.0, 3.0, size=shape)
    y, new_state = jax.jit(lambda p, s, x: layer.apply(p, s, x, train=True))(params, state, jnp.asarray(x))
    ry, rmean, rvar = np_batchnorm_train(
        x,
        np.asarray(params["gamma"]),
        np.asarray(params["beta"]),
        np.asarray(state["mean"]),
        np.asarray(state["var"]),
        0.3,
        1e-3,
        axis,
    )
    assert y.dtype == jnp.float64 and y.shape == shape
    np.testing.assert_allclose(y, ry, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new_state["mean"], rmean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new_state["var"], rvar, rtol=1e-12, atol=1e-12)


def test_running_statistics_over_many_steps_match_numpy(x64, rng):
    layer = BatchNorm(momentum=0.1, dtype=jnp.float64)
    _, params, state = layer.init(KEY, (-1, 3))
    step = jax.jit(lambda s, x: layer.apply(params, s, x, train=True)[1])
    mean, var = np.zeros(3), np.ones(3)
    for t in range(20):
        x = rng.normal(t * 0.1, 1 + t * 0.05, size=(8, 3))
        state = step(state, jnp.asarray(x))
        _, mean, var = np_batchnorm_train(x, np.ones(3), np.zeros(3), mean, var, 0.1, 1e-5, -1)
    np.testing.assert_allclose(state["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(state["var"], var, rtol=1e-12)


def test_eval_uses_running_statistics_and_leaves_them(x64, rng):
    layer = BatchNorm(eps=1e-2, dtype=jnp.float64)
    _, params, _ = layer.init(KEY, (-1, 4))
    state = {"mean": jnp.asarray(rng.normal(size=4)), "var": jnp.asarray(rng.uniform(0.5, 2, 4))}
    params = {"gamma": jnp.asarray(rng.uniform(0.5, 2, 4)), "beta": jnp.asarray(rng.normal(size=4))}
    x = rng.normal(size=(7, 4))
    y, new_state = layer.apply(params, state, jnp.asarray(x), train=False)
    ref = np.asarray(params["gamma"]) * (x - np.asarray(state["mean"])) / np.sqrt(
        np.asarray(state["var"]) + 1e-2
    ) + np.asarray(params["beta"])
    np.testing.assert_allclose(y, ref, rtol=1e-12)
    assert new_state is state


def test_eval_output_does_not_depend_on_the_rest_of_the_batch(rng):
    layer = BatchNorm()
    _, params, state = layer.init(KEY, (-1, 5))
    x = rng.normal(size=(32, 5)).astype(np.float32)
    _, state = layer.apply(params, state, x, train=True)  # non-trivial running statistics
    alone, _ = layer.apply(params, state, x[:1], train=False)
    other = np.concatenate([x[:1], 100 * rng.normal(size=(9, 5)).astype(np.float32)])
    together, _ = layer.apply(params, state, other, train=False)
    np.testing.assert_array_equal(alone[0], together[0])
    # In training it does depend on the batch: the statistics come from it.
    t1, _ = layer.apply(params, state, x[:2], train=True)
    t2, _ = layer.apply(params, state, other[:2], train=True)
    assert not np.allclose(t1[0], t2[0])


@pytest.mark.parametrize("shape", [(256, 4), (16, 4, 4, 4)])
def test_running_statistics_approach_the_distribution(shape):
    mu, sigma = np.array([-2.0, 0.0, 1.0, 5.0]), np.array([0.5, 1.0, 2.0, 3.0])
    momentum, steps = 0.1, 400
    layer = BatchNorm(momentum=momentum)
    _, params, state = layer.init(KEY, (-1, *shape[1:]))

    def body(state, k):
        x = mu + sigma * jax.random.normal(k, shape)
        return layer.apply(params, state, x, train=True)[1], None

    state, _ = jax.lax.scan(body, state, jax.random.split(jax.random.PRNGKey(1), steps))
    # Stationary spread of an exponential moving average of i.i.d. estimates with variance v:
    # momentum / (2 - momentum) * v. Batch mean: v = sigma^2 / m; unbiased variance: v = 2 sigma^4 / (m - 1).
    m = int(np.prod(shape[:-1]))
    shrink = momentum / (2 - momentum)
    sd_mean = np.sqrt(shrink * sigma**2 / m)
    sd_var = np.sqrt(shrink * 2 * sigma**4 / (m - 1))
    np.testing.assert_array_less(np.abs(np.asarray(state["mean"]) - mu), 5 * sd_mean)
    np.testing.assert_array_less(np.abs(np.asarray(state["var"]) - sigma**2), 5 * sd_var)


def test_init_values_and_affine_false(rng):
    layer = BatchNorm(affine=False)
    assert layer.kind == "batchnorm"
    assert dict(layer.config) == {"momentum": 0.1, "eps": 1e-5, "affine": False, "axis": -1}
    _, params, state = layer.init(KEY, (-1, 3))
    assert params == {}
    np.testing.assert_array_equal(state["mean"], np.zeros(3))
    np.testing.assert_array_equal(state["var"], np.ones(3))
    _, p2, _s2 = BatchNorm().init(jax.random.PRNGKey(7), (-1, 3))
    np.testing.assert_array_equal(p2["gamma"], np.ones(3))
    np.testing.assert_array_equal(p2["beta"], np.zeros(3))
    x = rng.normal(3.0, 2.0, size=(64, 3)).astype(np.float32)
    y, _ = layer.apply(params, state, x, train=True)
    np.testing.assert_allclose(np.mean(y, axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(np.var(y, axis=0), 1, atol=1e-3)  # 1 - eps / s2, with s2 about 4


def test_momentum_extremes(rng):
    x = rng.normal(size=(10, 2)).astype(np.float32)
    layer0, layer1 = BatchNorm(momentum=0.0), BatchNorm(momentum=1.0)
    _, params, state = layer0.init(KEY, (-1, 2))
    _, s0 = layer0.apply(params, state, x, train=True)
    np.testing.assert_array_equal(s0["mean"], state["mean"])
    np.testing.assert_array_equal(s0["var"], state["var"])
    _, s1 = layer1.apply(params, state, x, train=True)
    np.testing.assert_allclose(s1["mean"], x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s1["var"], x.var(0, ddof=1), rtol=1e-5)


def test_dtypes_are_kept():
    layer = BatchNorm()
    _, params, state = layer.init(KEY, (-1, 3))
    x = jnp.ones((4, 3), jnp.bfloat16) * jnp.arange(4, dtype=jnp.bfloat16)[:, None]
    y, new_state = layer.apply(params, state, x, train=True)
    assert y.dtype == jnp.float32  # bfloat16 input promoted by the float32 gamma, as Dense does
    assert new_state["mean"].dtype == new_state["var"].dtype == jnp.float32
    _, p16, s16 = BatchNorm(affine=False).init(KEY, (-1, 3))
    y16, _ = BatchNorm(affine=False).apply(p16, s16, x, train=True)
    assert y16.dtype == jnp.bfloat16


def test_gradients_flow_through_batch_statistics_but_not_into_running_ones(x64, rng):
    layer = BatchNorm(dtype=jnp.float64)
    _, params, state = layer.init(KEY, (-1, 3))
    x = jnp.asarray(rng.normal(size=(6, 3)))
    w = jnp.asarray(rng.normal(size=(6, 3)))

    def out(x, params):
        return jnp.sum(w * layer.apply(params, state, x, train=True)[0])

    # Finite differences agree with autodiff through the mean and variance of the batch.
    check_grads(out, (x, params), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    # The normalised output is invariant to shifting a channel, so its gradient sums to 0 per channel.
    np.testing.assert_allclose(jax.grad(out)(x, params).sum(0), 0, atol=1e-12)

    def running(x, state):
        new = layer.apply(params, state, x, train=True)[1]
        return jnp.sum(new["mean"]) + jnp.sum(new["var"])

    gx, gs = jax.grad(running, argnums=(0, 1))(x, state)
    np.testing.assert_array_equal(gx, np.zeros((6, 3)))
    # The old running value enters the update linearly (factor 1 - momentum): no gradient reaches the batch.
    np.testing.assert_allclose(gs["mean"], 0.9)


@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        ({"momentum": 1.5}, ValueError, r"BatchNorm: momentum must be <= 1.0, got 1.5"),
        ({"momentum": -0.1}, ValueError, r"BatchNorm: momentum must be >= 0.0, got -0.1"),
        ({"eps": 0.0}, ValueError, r"BatchNorm: eps must be > 0.0, got 0.0"),
        ({"eps": -1e-5}, ValueError, r"BatchNorm: eps must be > 0.0"),
        ({"eps": float("nan")}, ValueError, r"BatchNorm: eps must be finite"),
        ({"affine": 1}, TypeError, r"BatchNorm: affine must be a bool, got 1"),
        ({"axis": 1.0}, TypeError, r"BatchNorm: axis must be an int"),
    ],
)
def test_bad_hyperparameters(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        BatchNorm(**kwargs)


def test_batch_of_one_in_training_is_an_error_at_trace_time():
    layer = BatchNorm()
    _, params, state = layer.init(KEY, (-1, 4))
    with pytest.raises(ValueError, match=r"BatchNorm\(\): training needs at least 2 values per channel.*\(1, 4\)"):
        jax.jit(lambda x: layer.apply(params, state, x, train=True))(jnp.ones((1, 4)))
    y, _ = layer.apply(params, state, jnp.ones((1, 4)), train=False)  # evaluation is fine
    assert y.shape == (1, 4)


def test_bad_axes_and_shapes():
    with pytest.raises(ValueError, match=r"BatchNorm\(axis=0\).init: axis=0 is the batch axis"):
        BatchNorm(axis=0).init(KEY, (-1, 3))
    with pytest.raises(ValueError, match=r"BatchNorm\(axis=3\).init: axis=3 is out of range for an input with 2 axes"):
        BatchNorm(axis=3).init(KEY, (-1, 3))
    with pytest.raises(ValueError, match=r"BatchNorm\(\).init: the channel axis -1 of input_shape must be known"):
        BatchNorm().init(KEY, (8, -1))
    layer = BatchNorm()
    _, _params, state = layer.init(KEY, (-1, 3))
    with pytest.raises(
        ValueError,
        match=r"BatchNorm\(\): state\['mean'\]: expected shape \(5,\), got \(3,\)",
    ):
        layer.apply({"gamma": jnp.ones(5), "beta": jnp.zeros(5)}, state, jnp.ones((2, 5)), train=False)
    with pytest.raises(ValueError, match=r"BatchNorm\(\): params\['beta'\] is missing"):
        layer.apply({}, state, jnp.ones((2, 3)), train=False)
