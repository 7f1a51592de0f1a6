"""Each optimizer, with sensible settings, converges on an ill-conditioned quadratic and on Rosenbrock."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.optim as O

# A quadratic with condition number 100, rotated so the axes do not decouple the problem.
_THETA = 0.5
_ROT = np.array([[np.cos(_THETA), -np.sin(_THETA)], [np.sin(_THETA), np.cos(_THETA)]])
HESSIAN = jnp.asarray(_ROT @ np.diag([1.0, 100.0]) @ _ROT.T, jnp.float32)
X_STAR = jnp.array([1.0, -2.0])


def quadratic(p):
    d = p["x"] - X_STAR
    return 0.5 * d @ HESSIAN @ d


def rosenbrock(p):
    x, y = p["x"]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def minimise(opt, f, x0, steps):
    def body(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(f)(p), s, p)
        return (O.apply_updates(p, u), s), None

    p = {"x": jnp.asarray(x0, jnp.float32)}
    (p, _), _ = jax.lax.scan(body, (p, opt.init(p)), None, length=steps)
    return p["x"]


# (optimizer on the quadratic, on Rosenbrock, tolerance on the quadratic)
SETTINGS = {
    "sgd": (lambda: O.sgd(0.015), lambda: O.sgd(1e-3), 1e-3),
    "momentum": (lambda: O.sgd(5e-3, momentum=0.9), lambda: O.sgd(2e-4, momentum=0.9), 1e-3),
    "nesterov": (
        lambda: O.sgd(5e-3, momentum=0.9, nesterov=True),
        lambda: O.sgd(2e-4, momentum=0.9, nesterov=True),
        1e-3,
    ),
    "adagrad": (lambda: O.adagrad(0.5), lambda: O.adagrad(0.1), 1e-3),
    "rmsprop": (
        lambda: O.rmsprop(O.inverse_time_decay(1e-2, 1e-2)),
        lambda: O.rmsprop(O.inverse_time_decay(1e-2, 1e-2)),
        1e-3,
    ),
    "adam": (lambda: O.adam(0.05), lambda: O.adam(0.01), 1e-3),
    "amsgrad": (lambda: O.adam(0.05, amsgrad=True), lambda: O.adam(0.01, amsgrad=True), 1e-3),
    # Decoupled decay pulls the end point towards 0 a little: a looser tolerance on the quadratic.
    "adamw": (lambda: O.adamw(0.05, weight_decay=1e-3), lambda: O.adamw(0.01, weight_decay=1e-4), 1e-2),
}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_ill_conditioned_quadratic(name):
    make, _, tol = SETTINGS[name]
    x = minimise(make(), quadratic, [0.0, 0.0], 3000)
    assert float(jnp.linalg.norm(x - X_STAR)) < tol


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_rosenbrock(name):
    _, make, _ = SETTINGS[name]
    x0 = jnp.array([-1.5, 2.0])
    x = minimise(make(), rosenbrock, x0, 20000)
    assert float(rosenbrock({"x": x0})) > 10.0
    assert float(jnp.linalg.norm(x - 1.0)) < 1e-3
