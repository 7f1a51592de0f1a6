"""The CNN benchmark network, written twice: with jaxnet layers and by hand on ``lax.conv_general_dilated``.

Both train the same network on 8x8x1 images (the digits' size) with softmax cross-entropy on
integer labels and Adam (the constants of :mod:`_variants`)::

    Conv(32, 3x3, SAME, no bias) -> BatchNorm -> ReLU -> MaxPool(2x2)
    Conv(64, 3x3, SAME, no bias) -> BatchNorm -> ReLU -> MaxPool(2x2) -> Flatten -> Dense(10)

BatchNorm trains on batch statistics and updates its running mean and (unbiased) variance with
momentum 0.1 in both. Builders have the ``build(cfg, steps, dtype, x, y) -> run`` signature of
:mod:`_variants`; ``x`` holds flat 64-pixel samples, reshaped to images on the device once.
"""

from __future__ import annotations

import numpy as np
from _variants import JAXNET_LOSS, LR, adam_update, carry_loop

SIDE, CLASSES, WIDTHS = 8, 10, (32, 64)
# Multiply-adds per sample: two SAME 3x3 convolutions and the Dense layer.
MACS = (
    SIDE * SIDE * 9 * 1 * WIDTHS[0] + (SIDE // 2) ** 2 * 9 * WIDTHS[0] * WIDTHS[1] + (SIDE // 4) ** 2 * WIDTHS[1] * 10
)


def image_batches(cfg, steps, dtype, x, y):
    import jax.numpy as jnp

    xs = jnp.asarray(x, dtype).reshape(steps, cfg.batch, SIDE, SIDE, 1)
    ys = jnp.asarray(y).reshape(steps, cfg.batch)
    return [(xs[i], ys[i]) for i in range(steps)]


# --- jaxnet -------------------------------------------------------------------------------------


def jaxnet_cnn():
    from jaxnet import nn

    layers = []
    for w in WIDTHS:
        layers += [nn.Conv(w, (3, 3), use_bias=False), nn.BatchNorm(), nn.Relu(), nn.MaxPool((2, 2))]
    return nn.serial(*layers, nn.Flatten(), nn.Dense(CLASSES))


def build_jaxnet_cnn_step(cfg, steps, dtype, x, y):
    import jax

    from jaxnet.optim import adam
    from jaxnet.train import make_train_step

    model, opt = jaxnet_cnn(), adam(LR)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, SIDE, SIDE, 1))
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    step = make_train_step(model, JAXNET_LOSS, opt)
    return carry_loop(
        lambda c, b: step(*c, b, None)[:3], [params, state, opt.init(params)], image_batches(cfg, steps, dtype, x, y)
    )


# --- by hand ------------------------------------------------------------------------------------


def raw_cnn_init(key, dtype):
    """LeCun-normal kernels (HWIO) and Dense weights, BatchNorm scale 1 and shift 0; running stats 0 and 1."""
    import jax
    import jax.numpy as jnp

    params, state, cin = {}, {}, 1
    for i, w in enumerate(WIDTHS):
        k = jax.random.normal(jax.random.fold_in(key, i), (3, 3, cin, w), jnp.float32) / np.sqrt(9 * cin)
        params[f"conv{i}"] = k.astype(dtype)
        params[f"gamma{i}"], params[f"beta{i}"] = jnp.ones((w,), dtype), jnp.zeros((w,), dtype)
        state[f"mean{i}"], state[f"var{i}"] = jnp.zeros((w,), dtype), jnp.ones((w,), dtype)
        cin = w
    n_in = (SIDE // 4) ** 2 * WIDTHS[-1]
    params["w"] = (jax.random.normal(jax.random.fold_in(key, 9), (n_in, CLASSES), jnp.float32) / np.sqrt(n_in)).astype(
        dtype
    )
    params["b"] = jnp.zeros((CLASSES,), dtype)
    return params, state


def raw_cnn_loss(params, state, x, y):
    import jax
    import jax.numpy as jnp
    from jax import lax

    h, new_state = x, {}
    for i in range(len(WIDTHS)):
        h = lax.conv_general_dilated(h, params[f"conv{i}"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        mu = jnp.mean(h, axis=(0, 1, 2))
        var = jnp.mean(jnp.square(h - mu), axis=(0, 1, 2))
        m = h.size // h.shape[-1]
        new_state[f"mean{i}"] = 0.9 * state[f"mean{i}"] + 0.1 * lax.stop_gradient(mu)
        new_state[f"var{i}"] = 0.9 * state[f"var{i}"] + 0.1 * lax.stop_gradient(var) * (m / (m - 1))
        h = (h - mu) * lax.rsqrt(var + 1e-5) * params[f"gamma{i}"] + params[f"beta{i}"]
        h = lax.reduce_window(jax.nn.relu(h), -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    logits = h.reshape(h.shape[0], -1) @ params["w"] + params["b"]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), new_state


def raw_cnn_step(params, state, opt, x, y):
    """One Adam step with bias correction, written out (as :func:`_variants.raw_step`)."""
    import jax

    (loss, state), g = jax.value_and_grad(raw_cnn_loss, has_aux=True)(params, state, x, y)
    params, opt = adam_update(params, opt, g)
    return params, state, opt, loss


def build_raw_cnn_step(cfg, steps, dtype, x, y):
    import jax
    import jax.numpy as jnp

    params, state = raw_cnn_init(jax.random.PRNGKey(0), dtype)
    zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # noqa: E731  (two trees: both are donated)
    opt = (jnp.zeros([], jnp.int32), zeros(), zeros())
    step = jax.jit(raw_cnn_step, donate_argnums=(0, 1, 2))
    return carry_loop(lambda c, b: step(*c, *b)[:3], [params, state, opt], image_batches(cfg, steps, dtype, x, y))


CNN_VARIANTS = {"jaxnet-step": build_jaxnet_cnn_step, "raw-jax-step": build_raw_cnn_step}
"""The throughput variants that have a CNN version (the ``cnn`` config); the others report it unavailable."""
