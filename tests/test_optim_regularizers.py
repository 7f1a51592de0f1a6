"""L1/L2 penalties, weight decay, masks and gradient clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
import jaxnet.optim as O
from jaxnet.nn import BatchNorm

PARAMS = {
    "dense_0": {"w": jnp.array([[0.5, -1.0], [0.0, 2.0]]), "b": jnp.array([0.0, -0.3])},
    "batchnorm_1": {"gamma": jnp.array([1.0, 1.5]), "beta": jnp.array([0.2, 0.0])},
    "dense_2": {"w": jnp.array([[3.0], [-0.5]]), "b": jnp.array([1.0])},
}
WEIGHTS = [np.asarray(PARAMS["dense_0"]["w"]), np.asarray(PARAMS["dense_2"]["w"])]
ALL = [np.asarray(x) for x in jax.tree_util.tree_leaves(PARAMS)]


def test_l2_penalty_value_and_gradient():
    assert float(O.l2_penalty(PARAMS, 0.1)) == pytest.approx(0.05 * sum(np.sum(x**2) for x in ALL), rel=1e-6)
    assert float(O.l2_penalty(PARAMS, 0.1, O.weights_only)) == pytest.approx(
        0.05 * sum(np.sum(x**2) for x in WEIGHTS), rel=1e-6
    )
    g = jax.grad(O.l2_penalty)(PARAMS, 0.1, O.weights_only)
    np.testing.assert_allclose(g["dense_0"]["w"], 0.1 * WEIGHTS[0], rtol=1e-6)
    np.testing.assert_array_equal(g["dense_0"]["b"], 0.0)
    np.testing.assert_array_equal(g["batchnorm_1"]["gamma"], 0.0)


def test_l1_penalty_value_and_subgradient_with_sign_zero():
    assert float(O.l1_penalty(PARAMS, 0.2)) == pytest.approx(0.2 * sum(np.sum(np.abs(x)) for x in ALL), rel=1e-6)
    g = jax.grad(O.l1_penalty)(PARAMS, 0.2)
    for got, p in zip(jax.tree_util.tree_leaves(g), ALL, strict=True):
        np.testing.assert_array_equal(got, np.float32(0.2) * np.sign(p))
    # The zeros in the params get subgradient 0 (plain jnp.abs would give 1 there).
    assert float(g["dense_0"]["w"][1, 0]) == 0.0 and float(g["dense_0"]["b"][0]) == 0.0
    assert float(jax.grad(jnp.abs)(0.0)) == 1.0
    assert float(jax.grad(O.abs_sign0)(0.0)) == 0.0


def test_l1_step_is_the_chapters_update():
    # w <- w - lr (dL/dw + lam sign(w)) with a zero data gradient.
    lr, lam = 0.1, 0.5
    g = jax.grad(O.l1_penalty)(PARAMS, lam, O.weights_only)
    u, _ = O.sgd(lr).update(g, O.sgd(lr).init(PARAMS))
    new = O.apply_updates(PARAMS, u)
    np.testing.assert_allclose(new["dense_2"]["w"], WEIGHTS[1] - lr * lam * np.sign(WEIGHTS[1]), rtol=1e-6)
    np.testing.assert_array_equal(new["dense_0"]["b"], PARAMS["dense_0"]["b"])


def test_add_decayed_weights_is_the_l2_gradient_and_the_chapters_decay():
    lr, lam = 0.1, 0.3
    data_grad = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 0.7), PARAMS)
    opt = O.chain(O.add_decayed_weights(lam, O.weights_only), O.sgd(lr))
    u, _ = opt.update(data_grad, opt.init(PARAMS), PARAMS)
    via_loss = jax.tree_util.tree_map(jnp.add, data_grad, jax.grad(O.l2_penalty)(PARAMS, lam, O.weights_only))
    u_loss, _ = O.sgd(lr).update(via_loss, O.sgd(lr).init(PARAMS))
    for a, b in zip(jax.tree_util.tree_leaves(u), jax.tree_util.tree_leaves(u_loss), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    new = O.apply_updates(PARAMS, u)
    # w <- (1 - lr lam) w - lr g on weights; biases and batch-norm params only see the data gradient.
    np.testing.assert_allclose(new["dense_0"]["w"], (1 - lr * lam) * WEIGHTS[0] - lr * 0.7, rtol=1e-6)
    np.testing.assert_allclose(new["batchnorm_1"]["gamma"], np.array([1.0, 1.5]) - lr * 0.7, rtol=1e-6)


def test_weights_only_on_a_real_model():
    model = jn.serial(jn.Dense(4), BatchNorm(), jn.Relu(), jn.Dense(2))
    _, params, _ = model.init(jax.random.PRNGKey(0), (-1, 3))
    mask = O.weights_only(params)
    chosen = {tuple(k.key for k in path) for path, m in jax.tree_util.tree_leaves_with_path(mask) if m}
    assert chosen == {(name, "w") for name in params if name.startswith("dense")}
    leaves = jax.tree_util.tree_leaves_with_path(mask)
    assert any(path[-1].key == "gamma" and not m for path, m in leaves)


def test_masks_by_prefix_and_path_predicate():
    prefix = {"dense_0": True, "batchnorm_1": False, "dense_2": {"w": True, "b": False}}
    v = O.l2_penalty(PARAMS, 2.0, prefix)
    chosen = [WEIGHTS[0], np.asarray(PARAMS["dense_0"]["b"]), WEIGHTS[1]]
    assert float(v) == pytest.approx(sum(np.sum(x**2) for x in chosen), rel=1e-6)
    by_path = O.path_mask(lambda path, leaf: path[0] == "dense_2")
    assert float(O.l1_penalty(PARAMS, 1.0, by_path)) == pytest.approx(3.5 + 1.0, rel=1e-6)


@pytest.mark.parametrize(
    "fn",
    [
        lambda m: O.l2_penalty(PARAMS, 0.1, m),
        lambda m: O.l1_penalty(PARAMS, 0.1, m),
        lambda m: O.add_decayed_weights(0.1, m).init(PARAMS),
    ],
)
def test_mismatched_mask_is_a_value_error_naming_mask(fn):
    with pytest.raises(ValueError, match=r"mask does not match the params' structure"):
        fn({"dense_0": True, "dense_9": False})
    with pytest.raises(ValueError, match=r"mask does not match"):
        fn({"dense_0": {"w": True}, "batchnorm_1": True, "dense_2": True})
    with pytest.raises(TypeError, match=r"mask leaves must be bools, got 1"):
        fn({"dense_0": 1, "batchnorm_1": True, "dense_2": True})


def test_penalty_and_decay_input_checks():
    with pytest.raises(ValueError, match=r"l2_penalty: lam .* got -1\.0"):
        O.l2_penalty(PARAMS, -1.0)
    with pytest.raises(ValueError, match=r"l1_penalty: lam .* got nan"):
        O.l1_penalty(PARAMS, float("nan"))
    with pytest.raises(ValueError, match=r"add_decayed_weights: weight_decay .* got -0\.1"):
        O.add_decayed_weights(-0.1)
    opt = O.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match="add_decayed_weights: update needs params"):
        opt.update(PARAMS, opt.init(PARAMS))


def test_clip_by_global_norm():
    grads = jax.tree_util.tree_map(lambda p: 2 * p, PARAMS)
    norm = np.sqrt(sum(np.sum((2 * x) ** 2) for x in ALL))
    assert float(O.global_norm(grads)) == pytest.approx(norm, rel=1e-6)
    clip = O.clip_by_global_norm(1.0)
    out, _ = clip.update(grads, clip.init(PARAMS))
    assert float(O.global_norm(out)) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(out["dense_2"]["w"], 2 * WEIGHTS[1] / norm, rtol=1e-6)  # direction kept
    big = O.clip_by_global_norm(100.0)
    same, _ = big.update(grads, big.init(PARAMS))
    for a, b in zip(jax.tree_util.tree_leaves(same), jax.tree_util.tree_leaves(grads), strict=True):
        np.testing.assert_array_equal(a, b)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, PARAMS)
    z, _ = clip.update(zeros, clip.init(PARAMS))
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree_util.tree_leaves(z))
    with pytest.raises(ValueError, match=r"clip_by_global_norm: max_norm .* got -1\.0"):
        O.clip_by_global_norm(-1.0)


def test_clip_by_value():
    clip = O.clip_by_value(0.6)
    out, _ = clip.update(PARAMS, clip.init(PARAMS))
    for a, p in zip(jax.tree_util.tree_leaves(out), ALL, strict=True):
        np.testing.assert_array_equal(a, np.clip(p, np.float32(-0.6), np.float32(0.6)))
    with pytest.raises(ValueError, match=r"clip_by_value: max_delta .* got nan"):
        O.clip_by_value(float("nan"))
