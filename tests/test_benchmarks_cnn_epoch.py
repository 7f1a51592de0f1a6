"""cnn_epoch.py's networks are the same function in every library, and the im2col experiments are exact.

Timings are never asserted: these check the FLOP count, that the layout conversions (HWIO kernels,
PyTorch's OIHW and channel-first flatten order, Flax's kernel/bias names) give the same logits from
the shared parameters, that the im2col convolutions and their gradients equal ``lax``'s, and that
two workers report the same loss before and after one step.
"""

import json
import os
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

import _common as C  # noqa: E402
import cnn_epoch as E  # noqa: E402


def test_macs_by_hand():
    net = E.NETS["cnn2d"]
    assert net.flat_shape() == (7, 7, 64)
    assert net.macs() == 28 * 28 * 9 * 32 + 14 * 14 * 9 * 32 * 64 + 3136 * 128 + 128 * 10
    assert E.NETS["cnn1d"].macs() == 40 * 5 * (16 + 16 * 32 + 32 * 64) + 40 * 64 * 10


@pytest.mark.parametrize("name", ["cnn2d", "cnn1d"])
def test_jaxnet_and_the_hand_written_cnn_compute_the_same_logits(name):
    import jax
    import jax.numpy as jnp

    net = E.NETS[name]
    x, _ = E.make_data(net, 3, 1)
    params = jax.tree_util.tree_map(jnp.asarray, E.np_params(net))
    ref = np.asarray(E.raw_logits(params, jnp.asarray(x), net), np.float64)
    model, _, jp, js = E._jaxnet_parts(net)
    out, _ = model.apply(jp, js, jnp.asarray(x), key=None, train=False)
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-4, atol=1e-5)
    # PyTorch (the bench extra, not installed by `make test`) is checked by the driver itself: every
    # worker's first-step loss is compared with jaxnet's, and a difference over 1e-4 is printed as MISMATCH.


@pytest.mark.parametrize("shape", [(2, 6, 5, 3), (2, 9, 8)])
def test_im2col_convolutions_equal_lax(shape):
    import jax
    from _im2col import _lax_conv, im2col_conv, wgrad_im2col_conv

    rng = np.random.default_rng(0)
    k = (3,) * (len(shape) - 2)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((*k, shape[-1], 4)).astype(np.float32)
    g = rng.standard_normal((*shape[:-1], 4)).astype(np.float32)
    ref = np.asarray(_lax_conv(x, w))
    ref_grads = jax.vjp(_lax_conv, x, w)[1](g)
    for conv in (im2col_conv, wgrad_im2col_conv):
        np.testing.assert_allclose(np.asarray(conv(x, w)), ref, rtol=1e-5, atol=1e-5)
        for a, b in zip(jax.vjp(conv, x, w)[1](g), ref_grads, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)


@pytest.mark.slow  # two compiles and a few seconds of timing
def test_workers_agree_on_the_first_step(capsys):
    losses = {}
    for variant in ("raw-step", "jaxnet-epoch"):
        E.worker(["cnn1d-b100", variant, "1", "check"])
        line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(C.RESULT_TAG)][-1]
        res = json.loads(line[len(C.RESULT_TAG) :])
        assert res["samples_per_s"] > 0, res
        losses[variant] = (res["loss0"], res["loss1"])
    (a0, a1), (b0, b1) = losses.values()
    assert abs(a0 - b0) < 1e-5 and abs(a1 - b1) < 1e-5 and a1 != a0, losses
