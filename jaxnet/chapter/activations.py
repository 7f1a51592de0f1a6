"""Activation functions and their handwritten derivatives (section 4.1.2, figures 4.5-4.7).

Plots sigmoid, tanh, ReLU, Leaky ReLU, PReLU and ELU with the derivatives written by hand in
:mod:`jaxnet.nn.activations`, and checks each derivative against ``jax.grad`` away from the kinks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.chapter._common import claim, new_result, pyplot, save
from jaxnet.nn import activations as A

FUNCTIONS = {
    "sigmoid": (A.sigmoid, A.sigmoid_derivative),
    "tanh": (A.tanh, A.tanh_derivative),
    "relu": (A.relu, A.relu_derivative),
    "leaky_relu (alpha=0.01)": (A.leaky_relu, A.leaky_relu_derivative),
    "prelu (alpha=0.25)": (lambda z: A.prelu(z, 0.25), lambda z: A.prelu_derivative(z, 0.25)),
    "elu (alpha=1)": (A.elu, A.elu_derivative),
}


def derivative_errors(z) -> dict:
    """Largest ``|handwritten derivative - jax.grad|`` of each activation over the points ``z``."""
    out = {}
    for name, (f, df) in FUNCTIONS.items():
        auto = jax.vmap(jax.grad(lambda t, f=f: f(t)))(z)
        out[name] = float(jnp.max(jnp.abs(df(z) - auto)))
    return out


def run(quick: bool = True, out: str | None = None) -> dict:
    """Plot the activations and derivatives; claim the handwritten derivatives agree with autodiff."""
    res = new_result("activations", "4.1.2", "Activation functions and their derivatives")
    z = jnp.linspace(-5.0, 5.0, 401 if quick else 2001)
    off_kink = z[jnp.abs(z) > 1e-3]
    errs = derivative_errors(off_kink)
    res["numbers"]["max |handwritten - jax.grad|"] = errs
    res["numbers"]["sigmoid'(0), tanh'(0)"] = [
        float(A.sigmoid_derivative(jnp.asarray(0.0))),
        float(A.tanh_derivative(jnp.asarray(0.0))),
    ]
    res["numbers"]["sigmoid'(5) (saturation)"] = float(A.sigmoid_derivative(jnp.asarray(5.0)))
    worst = max(errs.values())
    res["claims"].append(
        claim(
            "every handwritten derivative equals jax.grad (off the kink at 0)", worst < 1e-5, f"max error {worst:.1e}"
        )
    )
    s0, s5 = float(A.sigmoid_derivative(jnp.asarray(0.0))), float(A.sigmoid_derivative(jnp.asarray(5.0)))
    res["claims"].append(
        claim(
            "sigmoid saturates: its slope is at most 1/4 and nearly 0 for |z| >= 5",
            s0 == 0.25 and s5 < 0.01,
            f"sigmoid'(0) = {s0:.3f}, sigmoid'(5) = {s5:.4f}",
        )
    )
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(11, 6))
    zn = np.asarray(z)
    for ax, (name, (f, df)) in zip(axes.ravel(), FUNCTIONS.items(), strict=False):
        ax.plot(zn, np.asarray(f(z)), label="f(z)")
        ax.plot(zn, np.asarray(df(z)), "--", label="f'(z), by hand")
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(res, fig, out, "activations.png", "Each activation (solid) and its handwritten derivative (dashed).")
    return res
