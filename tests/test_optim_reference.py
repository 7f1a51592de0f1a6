"""Every optimizer against a float64 NumPy reference written from torch.optim's formulas.

200 steps of a fixed, seeded gradient stream on a nested pytree; relative error <= 1e-10.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.optim as O

STEPS = 200
SHAPES = {"layer": {"w": (3, 4), "b": (4,)}, "blocks": [(5,), (2, 2)]}


def _tree(fn):
    return jax.tree_util.tree_map(fn, SHAPES, is_leaf=lambda s: isinstance(s, tuple))


def _stream():
    rng = np.random.default_rng(1234)
    params = _tree(lambda s: rng.normal(size=s))
    # Gradients of varying scale and sign, with some exact zeros (edge case for the roots).
    grads = _tree(lambda s: rng.normal(size=(STEPS, *s)) * rng.choice([0.0, 0.1, 1.0, 3.0], size=(STEPS, *s)))
    return params, grads


def run_jax(opt, params, grads):
    """Apply ``opt`` along the stream in one ``lax.scan``."""

    def body(carry, g):
        p, s = carry
        u, s = opt.update(g, s, p)
        return (O.apply_updates(p, u), s), None

    params = jax.tree_util.tree_map(jnp.asarray, params)
    (p, _), _ = jax.lax.scan(body, (params, opt.init(params)), jax.tree_util.tree_map(jnp.asarray, grads))
    return p


def run_numpy(rule, params, grads, lr):
    """``rule(g, p, state_dict, t, lr_t) -> new p`` per leaf; ``t`` counts from 1."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    gleaves = treedef.flatten_up_to(grads)
    out = []
    for p, gs in zip(leaves, gleaves, strict=True):
        p, st = np.array(p, np.float64), {}
        for t in range(1, STEPS + 1):
            p = rule(gs[t - 1], p, st, t, lr(t - 1))
        out.append(p)
    return treedef.unflatten(out)


def np_sgd(momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    def rule(g, p, st, t, lr):
        g = g + weight_decay * p
        if momentum:
            st["b"] = g.copy() if t == 1 else momentum * st["b"] + (1 - dampening) * g
            g = g + momentum * st["b"] if nesterov else st["b"]
        return p - lr * g

    return rule


def np_adagrad(lr_decay=0.0, init_acc=0.0, eps=1e-10):
    def rule(g, p, st, t, lr):
        st.setdefault("s", np.full_like(p, init_acc))
        clr = lr / (1 + (t - 1) * lr_decay)
        st["s"] = st["s"] + g * g
        return p - clr * g / (np.sqrt(st["s"]) + eps)

    return rule


def np_rmsprop(alpha=0.99, eps=1e-8, momentum=0.0, centered=False, eps_in_sqrt=False):
    def rule(g, p, st, t, lr):
        st["v"] = alpha * st.get("v", 0.0) + (1 - alpha) * g * g
        var = st["v"]
        if centered:
            st["m"] = alpha * st.get("m", 0.0) + (1 - alpha) * g
            var = var - st["m"] ** 2
        d = np.sqrt(var + eps) if eps_in_sqrt else np.sqrt(var) + eps
        if momentum:
            st["b"] = momentum * st.get("b", 0.0) + g / d
            return p - lr * st["b"]
        return p - lr * g / d

    return rule


def np_adam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, amsgrad=False, decoupled=0.0):
    def rule(g, p, st, t, lr):
        p = p * (1 - lr * decoupled)
        st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
        st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * g * g
        v = st["v"]
        if amsgrad:
            st["vmax"] = np.maximum(st.get("vmax", 0.0), st["v"])
            v = st["vmax"]
        mhat, vhat = st["m"] / (1 - b1**t), v / (1 - b2**t)
        return p - lr * mhat / (np.sqrt(vhat + eps_root) + eps)

    return rule


def const(v):
    return lambda t: v


def np_cosine(v0, T):
    return lambda t: 0.5 * v0 * (1 + math.cos(math.pi * min(t, T) / T))


CASES = {
    "sgd": (lambda: O.sgd(0.05), np_sgd(), const(0.05)),
    "sgd-momentum": (lambda: O.sgd(0.05, momentum=0.9), np_sgd(0.9), const(0.05)),
    "sgd-dampening": (lambda: O.sgd(0.05, momentum=0.8, dampening=0.3), np_sgd(0.8, 0.3), const(0.05)),
    "sgd-nesterov": (lambda: O.sgd(0.05, momentum=0.9, nesterov=True), np_sgd(0.9, nesterov=True), const(0.05)),
    "sgd-cosine": (lambda: O.sgd(O.cosine_decay(0.05, 150), momentum=0.9), np_sgd(0.9), np_cosine(0.05, 150)),
    "sgd-weight-decay": (
        lambda: O.chain(O.add_decayed_weights(0.1), O.sgd(0.05, momentum=0.9)),
        np_sgd(0.9, weight_decay=0.1),
        const(0.05),
    ),
    "adagrad": (lambda: O.adagrad(0.1), np_adagrad(), const(0.1)),
    "adagrad-options": (
        lambda: O.adagrad(0.1, lr_decay=0.01, initial_accumulator_value=0.1, eps=1e-6),
        np_adagrad(0.01, 0.1, 1e-6),
        const(0.1),
    ),
    "rmsprop": (lambda: O.rmsprop(0.01), np_rmsprop(), const(0.01)),
    "rmsprop-centered": (
        lambda: O.rmsprop(0.01, alpha=0.9, centered=True, eps=1e-3),
        np_rmsprop(0.9, 1e-3, centered=True),
        const(0.01),
    ),
    "rmsprop-momentum": (lambda: O.rmsprop(0.01, momentum=0.5), np_rmsprop(momentum=0.5), const(0.01)),
    "rmsprop-chapter": (
        lambda: O.rmsprop(0.01, alpha=0.9, eps=1e-6, eps_in_sqrt=True),
        np_rmsprop(0.9, 1e-6, eps_in_sqrt=True),
        const(0.01),
    ),
    "rmsprop-all": (
        lambda: O.rmsprop(0.01, alpha=0.95, eps=1e-2, momentum=0.7, centered=True, eps_in_sqrt=True),
        np_rmsprop(0.95, 1e-2, 0.7, True, True),
        const(0.01),
    ),
    "adam": (lambda: O.adam(0.01), np_adam(), const(0.01)),
    "adam-amsgrad": (
        lambda: O.adam(0.01, b1=0.8, b2=0.99, amsgrad=True),
        np_adam(0.8, 0.99, amsgrad=True),
        const(0.01),
    ),
    "adam-chapter": (
        lambda: O.adam(0.01, b2=0.99, eps=0.0, eps_root=1e-8),
        np_adam(b2=0.99, eps=0.0, eps_root=1e-8),
        const(0.01),
    ),
    "adam-step-decay": (
        lambda: O.adam(O.step_decay(0.02, 0.5, every=50)),
        np_adam(),
        lambda t: 0.02 * 0.5 ** (t // 50),
    ),
    "adamw": (lambda: O.adamw(0.01, weight_decay=0.1), np_adam(decoupled=0.1), const(0.01)),
    "adamw-amsgrad": (lambda: O.adamw(0.01, amsgrad=True), np_adam(amsgrad=True, decoupled=1e-2), const(0.01)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_float64_reference(name, x64):
    make, rule, lr = CASES[name]
    params, grads = _stream()
    got = run_jax(make(), params, grads)
    want = run_numpy(rule, params, grads, lr)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        assert g.dtype == jnp.float64
        rel = np.linalg.norm(np.asarray(g) - w) / np.linalg.norm(w)
        assert rel <= 1e-10, (name, rel)
    # The trajectory moved: the test would catch an optimizer that does nothing.
    moved = sum(
        np.linalg.norm(w - p)
        for w, p in zip(jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(params), strict=True)
    )
    assert moved > 1e-2


def test_float32_states_keep_their_dtype():
    params, grads = _stream()
    params = jax.tree_util.tree_map(lambda p: jnp.asarray(p, jnp.float32), params)
    g = jax.tree_util.tree_map(lambda s: jnp.asarray(s[0], jnp.float32), grads)
    for name, (make, _, _) in CASES.items():
        opt = make()
        state = opt.init(params)
        updates, new_state = jax.eval_shape(opt.update, g, state, params)
        assert all(u.dtype == jnp.float32 for u in jax.tree_util.tree_leaves(updates)), name
        assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state), name
        for a, b in zip(jax.tree_util.tree_leaves(new_state), jax.tree_util.tree_leaves(state), strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape, name
