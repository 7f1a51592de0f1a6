"""Masks that know the ecosystem's names; freeze and multi_transform (issue 15 items 2 and 3)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn
from jaxnet import optim as O

FLAX = {
    "params": {
        "Dense_0": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)},
        "LayerNorm_0": {"scale": jnp.ones(4), "bias": jnp.zeros(4)},
        "Embed_0": {"embedding": jnp.ones((5, 4))},
    }
}
HAIKU = {
    "mlp/~/linear_0": {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)},
    "layer_norm": {"scale": jnp.ones(4), "offset": jnp.zeros(4)},
}


def _selected(mask):
    return sorted(
        "/".join(str(getattr(k, "key", k)) for k in path) for path, m in jax.tree_util.tree_leaves_with_path(mask) if m
    )


def test_weights_only_knows_flax_haiku_and_jaxnet_names():
    assert _selected(O.weights_only(FLAX)) == ["params/Dense_0/kernel"]
    assert _selected(O.weights_only(HAIKU)) == ["mlp/~/linear_0/w"]
    _, params, _ = nn.MLP([4, 2], batchnorm=True).init(jax.random.PRNGKey(0), (-1, 3))
    assert _selected(O.weights_only(params)) == ["dense_0/w", "dense_3/w"]
    nnx_like = {"linear": {"kernel": {"value": jnp.ones((2, 2))}, "bias": {"value": jnp.zeros(2)}}}
    assert _selected(O.weights_only(nnx_like)) == ["linear/kernel/value"]


def test_weight_decay_on_flax_params_touches_kernels_only():
    opt = O.add_decayed_weights(0.5, O.weights_only)
    grads = jax.tree_util.tree_map(jnp.zeros_like, FLAX)
    u, _ = opt.update(grads, opt.init(FLAX), FLAX)
    np.testing.assert_allclose(u["params"]["Dense_0"]["kernel"], 0.5)
    assert all(
        float(jnp.abs(v).sum()) == 0
        for v in jax.tree_util.tree_leaves({**u["params"], "Dense_0": {"bias": u["params"]["Dense_0"]["bias"]}})
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda m: O.add_decayed_weights(0.1, m).init(FLAX),
        lambda m: O.l2_penalty(FLAX, 0.1, m),
        lambda m: O.freeze(m).init(FLAX),
        lambda m: O.freeze(m, O.sgd(0.1)).init(FLAX),
    ],
)
def test_a_mask_that_selects_nothing_raises(make):
    names_w = O.path_mask(lambda path, leaf: path[-1] == "w")  # jaxnet's name, on Flax params
    with pytest.raises(ValueError, match=r"selects no parameter \(params: params/Dense_0/bias"):
        make(names_w)
    with pytest.raises(ValueError, match="selects no parameter"):
        make({"params": False})


def _mlp_params():
    _, params, _ = nn.MLP([6, 3]).init(jax.random.PRNGKey(0), (-1, 4))
    return params


def _grads(params, i):
    return jax.tree_util.tree_map(lambda p: jnp.sin(p * (i + 1.0)) + 0.1 * i, params)


def _run(opt, params, n=4):
    s = opt.init(params)
    for i in range(n):
        u, s = opt.update(_grads(params, i), s, params)
        params = O.apply_updates(params, u)
    return params, s


def test_freeze_the_body_trains_the_head_like_the_optimizer_alone():
    params = _mlp_params()
    body = {"dense_0": True, "dense_2": False}
    trained, state = _run(O.freeze(body, O.adam(0.05)), params)
    chex.assert_trees_all_equal(trained["dense_0"], params["dense_0"])
    # the head's reference: adam on the head alone, fed the same gradients
    head, _ = _run_head(O.adam(0.05), params)
    chex.assert_trees_all_close(trained["dense_2"], head, rtol=1e-6)
    # no optimizer state for frozen leaves: adam's moments hold the head's two arrays only
    assert len(jax.tree_util.tree_leaves(state.inner_states["trainable"].mu)) == 2
    assert jax.tree_util.tree_leaves(state.inner_states["frozen"]) == []


def _run_head(opt, params, n=4):
    head = params["dense_2"]
    s = opt.init(head)
    for i in range(n):
        u, s = opt.update(_grads(head, i), s, head)
        head = O.apply_updates(head, u)
    return head, s


def test_freeze_without_optimizer_zeroes_frozen_gradients_in_a_chain():
    params = _mlp_params()
    trained, _ = _run(O.chain(O.freeze({"dense_0": {"w": True, "b": False}, "dense_2": False}), O.sgd(0.1)), params)
    chex.assert_trees_all_equal(trained["dense_0"]["w"], params["dense_0"]["w"])
    assert not jnp.allclose(trained["dense_0"]["b"], params["dense_0"]["b"])


def test_multi_transform_matches_optax():
    optax = pytest.importorskip("optax")
    params = _mlp_params()

    def labels(p):
        return jax.tree_util.tree_map_with_path(lambda path, _: "w" if path[-1].key == "w" else "b", p)

    ours, s = _run(O.multi_transform({"w": O.adam(0.03), "b": O.sgd(0.1, momentum=0.9)}, labels), params)
    tx = optax.multi_transform({"w": optax.adam(0.03), "b": optax.sgd(0.1, momentum=0.9)}, labels)
    theirs, _ = _run(tx, params)
    chex.assert_trees_all_close(ours, theirs, rtol=1e-5, atol=1e-5)  # adam: same rule, different rounding
    assert s.inner_states["w"].mu["dense_0"]["b"] is None  # the bias group's leaves are absent from adam's state


def test_multi_transform_prefix_labels_and_errors():
    params = _mlp_params()
    opt = O.multi_transform({"body": O.sgd(0.0), "head": O.sgd(0.1)}, {"dense_0": "body", "dense_2": "head"})
    trained, _ = _run(opt, params)
    chex.assert_trees_all_equal(trained["dense_0"], params["dense_0"])
    with pytest.raises(
        ValueError, match="label 'head' \\(of dense_2/b\\) has no optimizer; transforms has \\['body'\\]"
    ):
        O.multi_transform({"body": O.sgd(0.1)}, {"dense_0": "body", "dense_2": "head"}).init(params)
    with pytest.raises(ValueError, match="the optimizer for label 'x' has no parameter with that label"):
        O.multi_transform({"body": O.sgd(0.1), "x": O.sgd(0.1)}, {"dense_0": "body", "dense_2": "body"}).init(params)
    with pytest.raises(TypeError, match="labels must be strings, got 3"):
        O.multi_transform({"body": O.sgd(0.1)}, {"dense_0": 3, "dense_2": "body"}).init(params)
    with pytest.raises(ValueError, match="labels do not match the params' structure"):
        O.multi_transform({"body": O.sgd(0.1)}, {"dense_9": "body"}).init(params)
    with pytest.raises(TypeError, match="transforms must be a non-empty dict"):
        O.multi_transform({}, {"dense_0": "body"})


def test_freeze_state_checkpoints_and_restores(tmp_path):
    from jaxnet import train as T

    params = _mlp_params()
    opt = O.freeze({"dense_0": True, "dense_2": False}, O.adam(0.05))
    _, state = _run(opt, params)
    path = T.save_checkpoint(tmp_path / "ck", params=params, opt_state=state)
    back = T.load_checkpoint(path, params=params, opt_state=opt.init(params))
    chex.assert_trees_all_equal(back.opt_state, state)


def _head(path, leaf):
    return path[0] == "dense_2"


TWO = {"dense_0": {"w": jnp.ones((2, 2))}, "dense_2": {"w": jnp.ones((2, 2))}}


@pytest.mark.parametrize("make", [lambda m: O.freeze(m, O.sgd(0.1)), lambda m: O.add_decayed_weights(1e-2, mask=m)])
def test_a_path_predicate_given_as_a_mask_says_to_wrap_it(make):
    with pytest.raises(TypeError, match=r"mask is a function of 2 arguments \(path, leaf\).*path_mask"):
        make(_head).init(TWO)


def test_the_wrapped_path_predicate_freezes_what_it_selects():
    frozen = O.freeze(O.path_mask(_head), O.sgd(0.1))
    updates, _ = frozen.update(TWO, frozen.init(TWO), TWO)
    np.testing.assert_array_equal(updates["dense_2"]["w"], 0.0)
    np.testing.assert_array_equal(updates["dense_0"]["w"], np.float32(-0.1))


def test_multi_transform_labels_of_two_arguments_say_so():
    def label(path, leaf):
        return "a"

    with pytest.raises(TypeError, match=r"labels is a function of 2 arguments.*tree_map_with_path"):
        O.multi_transform({"a": O.sgd(0.1)}, label).init(TWO)
