"""SGD against the chapter's velocity forms of momentum and Nesterov, and the optimizers' input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.optim as O

A = np.diag([1.0, 10.0, 50.0])
B = np.array([1.0, -1.0, 0.5])


def grad_np(w):
    """Gradient of 0.5 w'Aw - b'w."""
    return A @ w - B


def grad_jax(p):
    return {"w": jnp.asarray(A) @ p["w"] - jnp.asarray(B)}


def torch_form(opt, w0, steps):
    """Iterates of a jaxnet optimizer on the quadratic, gradient taken at the current params."""
    p, s, out = {"w": jnp.asarray(w0)}, None, []
    s = opt.init(p)
    update = jax.jit(opt.update)
    for _ in range(steps):
        u, s = update(grad_jax(p), s, p)
        p = O.apply_updates(p, u)
        out.append(np.asarray(p["w"]))
    return np.array(out)


def chapter_momentum(w0, lr, mu, steps, nesterov=False):
    """The chapter's velocity form: m <- mu m - lr grad(w [+ mu m]); w <- w + m. Returns (w_t, m_t)."""
    w, m, ws, ms = np.array(w0, np.float64), np.zeros(3), [], []
    for t in range(steps):
        rate = lr(t)
        g = grad_np(w + mu * m) if nesterov else grad_np(w)
        m = mu * m - rate * g
        w = w + m
        ws.append(w.copy())
        ms.append(m.copy())
    return np.array(ws), np.array(ms)


W0 = np.array([2.0, -1.0, 3.0])


def test_velocity_momentum_equals_sgd_momentum_at_constant_lr(x64):
    ws, _ = chapter_momentum(W0, lambda t: 0.01, 0.9, 100)
    ours = torch_form(O.sgd(0.01, momentum=0.9), W0, 100)
    np.testing.assert_allclose(ours, ws, rtol=1e-12, atol=1e-12)


def test_velocity_momentum_differs_when_the_rate_changes(x64):
    # PyTorch's form multiplies the whole buffer by the current rate; the chapter's multiplies
    # only the new gradient. Equal while the rate is constant, different after it changes.
    sched = O.step_decay(0.01, 0.5, every=10)
    ws, _ = chapter_momentum(W0, lambda t: 0.01 * 0.5 ** (t // 10), 0.9, 30)
    ours = torch_form(O.sgd(sched, momentum=0.9), W0, 30)
    np.testing.assert_allclose(ours[:10], ws[:10], rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(ours[10:] - ws[10:])) > 1e-4


def test_chapter_nesterov_is_pytorch_nesterov_at_the_look_ahead_point(x64):
    # Statement checked here: with m_0 = 0 and a constant rate, PyTorch's Nesterov iterates are
    # the chapter's look-ahead points, p_t = w_t + mu m_t (the change of variables w' = w + mu m).
    # The two agree at the start and then differ by exactly mu m_t.
    mu, lr = 0.9, 0.01
    ws, ms = chapter_momentum(W0, lambda t: lr, mu, 100, nesterov=True)
    ours = torch_form(O.sgd(lr, momentum=mu, nesterov=True), W0, 100)
    np.testing.assert_allclose(ours, ws + mu * ms, rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(ours - ws)) > 1e-3  # not the same sequence of w
    # Both converge to the same minimiser.
    np.testing.assert_allclose(ours[-1], np.linalg.solve(A, B), atol=0.05)


def test_first_step_ignores_dampening_like_pytorch(x64):
    g = {"w": jnp.array([1.0, 2.0])}
    opt = O.sgd(0.1, momentum=0.9, dampening=0.5)
    u1, s = opt.update(g, opt.init(g), g)
    np.testing.assert_allclose(u1["w"], -0.1 * np.array([1.0, 2.0]))
    u2, _ = opt.update(g, s, g)
    np.testing.assert_allclose(u2["w"], -0.1 * (0.9 + 0.5) * np.array([1.0, 2.0]))


def test_plain_sgd_state_is_small_and_signature_compatible():
    opt = O.sgd(0.1)
    s = opt.init({"w": jnp.ones(3)})
    assert isinstance(s, O.SgdState) and s.trace is None and s.momentum is None
    u, s = opt.update({"w": jnp.ones(3)}, s)
    np.testing.assert_allclose(u["w"], -0.1 * np.ones(3), rtol=1e-7)
    assert int(s.count) == 1


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: O.sgd(-0.1), r"sgd: learning_rate .* got -0\.1"),
        (lambda: O.sgd(float("nan")), r"sgd: learning_rate .* got nan"),
        (lambda: O.sgd(float("inf")), r"sgd: learning_rate .* got inf"),
        (lambda: O.sgd(0.1, momentum=-0.5), r"sgd: momentum .* got -0\.5"),
        (lambda: O.sgd(0.1, nesterov=True), r"sgd: nesterov=True needs momentum > 0, got momentum=0"),
        (
            lambda: O.sgd(0.1, momentum=0.9, dampening=0.1, nesterov=True),
            r"nesterov=True needs dampening=0, got dampening=0\.1",
        ),
        (lambda: O.sgd(0.1, momentum=0.9, dampening=1.5), r"sgd: dampening .*\[0\.0, 1\.0\].* got 1\.5"),
        (lambda: O.adam(0.1, b1=1.0), r"adam: b1 .*\[0\.0, 1\.0\).* got 1\.0"),
        (lambda: O.adam(0.1, b2=-0.1), r"adam: b2 .* got -0\.1"),
        (lambda: O.adam(0.1, eps=-1e-8), r"adam: eps .* got -1e-08"),
        (lambda: O.adam(0.1, eps_root=float("nan")), r"adam: eps_root .* got nan"),
        (lambda: O.adamw(-1.0), r"adamw: learning_rate .* got -1\.0"),
        (lambda: O.adamw(0.1, weight_decay=-0.1), r"adamw: weight_decay .* got -0\.1"),
        (lambda: O.adagrad(0.1, eps=-1.0), r"adagrad: eps .* got -1\.0"),
        (lambda: O.adagrad(0.1, lr_decay=-1.0), r"adagrad: lr_decay .* got -1\.0"),
        (lambda: O.rmsprop(0.1, alpha=1.0), r"rmsprop: alpha .* got 1\.0"),
        (lambda: O.rmsprop(0.1, momentum=-0.9), r"rmsprop: momentum .* got -0\.9"),
        (lambda: O.rmsprop(0.1, eps=-1.0), r"rmsprop: eps .* got -1\.0"),
        (
            lambda: O.sgd(lambda t: jnp.ones(3) * 0.1),
            r"sgd: the schedule given as learning_rate must return a scalar, got shape\(s\) \[\(3,\)\]",
        ),
        (lambda: O.adam(lambda t: jnp.ones((2, 2))), r"adam: the schedule given as learning_rate must return a scalar"),
        (lambda: O.sgd(np.ones(2)), r"sgd: learning_rate must be a scalar, got shape \(2,\)"),
    ],
)
def test_bad_hyperparameters_raise_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="sgd: learning_rate must be a number, got 'fast'"):
        O.sgd("fast")
    with pytest.raises(TypeError, match="sgd: nesterov must be a bool"):
        O.sgd(0.1, momentum=0.9, nesterov=1)
    with pytest.raises(TypeError, match="adam: b1 must be a number, got the callable"):
        O.adam(0.1, b1=lambda t: 0.9)


def test_adamw_needs_params():
    opt = O.adamw(0.1)
    g = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="adamw: update needs params"):
        opt.update(g, opt.init(g))


def test_adamw_without_decay_is_adam(x64):
    g = {"w": jnp.array([0.3, -2.0])}
    a, w = O.adam(0.1), O.adamw(0.1, weight_decay=0.0)
    sa, sw = a.init(g), w.init(g)
    for _ in range(3):
        ua, sa = a.update(g, sa, g)
        uw, sw = w.update(g, sw, g)
    np.testing.assert_array_equal(ua["w"], uw["w"])


def test_dampening_field_only_when_built_with_dampening():
    params = {"w": jnp.ones(2)}
    s = O.sgd(0.1, momentum=0.9).init(params)
    assert s.dampening is None and s.momentum is not None
    with pytest.raises(ValueError, match=r"no hyperparameter 'dampening'; it has \['learning_rate', 'momentum'\]"):
        O.set_hyperparameter(s, "dampening", 0.5)
    s = O.set_hyperparameter(O.sgd(0.1, momentum=0.9, dampening=0.1).init(params), "dampening", 0.5)
    assert float(s.dampening) == 0.5
