"""Data parallelism over 8 forced host devices equals the single-device step (run in a subprocess)."""

import os
import subprocess
import sys
import textwrap

import jax
import pytest

from jaxnet.train import data_mesh, make_parallel_train_step

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    import jaxnet as jn
    from jaxnet.nn import losses
    from jaxnet.train import data_mesh, make_parallel_train_step, make_train_step, replicate, shard_batch

    assert jax.device_count() == 8, jax.devices()
    model = jn.MLP([32, 32, 3])
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 4))
    opt = jn.sgd(0.1)
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 4))
    y = jax.random.randint(jax.random.PRNGKey(2), (64,), 0, 3)
    copy = lambda t: jax.tree_util.tree_map(jnp.copy, t)
    loss = losses.softmax_cross_entropy_with_integer_labels
    metrics = {"accuracy": losses.accuracy}

    mesh = data_mesh()
    pstep = make_parallel_train_step(model, loss, opt, mesh=mesh, metrics=metrics)
    sstep = make_train_step(model, loss, opt, metrics=metrics)
    pp, ps, po = replicate(copy(params), mesh), state, replicate(opt.init(params), mesh)
    sp, ss, so = copy(params), state, opt.init(params)
    for i in range(5):
        xb, yb = jnp.roll(x, 8 * i, axis=0), jnp.roll(y, 8 * i, axis=0)
        sharded = shard_batch((xb, yb), mesh)
        assert len(sharded[0].sharding.device_set) == 8
        assert sharded[0].addressable_shards[0].data.shape == (8, 4)  # each device holds 64 / 8 samples
        pp, ps, po, pm = pstep(pp, ps, po, sharded, jax.random.PRNGKey(i))
        sp, ss, so, sm = sstep(sp, ss, so, (xb, yb), jax.random.PRNGKey(i))
        np.testing.assert_allclose(float(pm["loss"]), float(sm["loss"]), rtol=1e-5)
        np.testing.assert_allclose(float(pm["accuracy"]), float(sm["accuracy"]), rtol=1e-6)
    leaf = jax.tree_util.tree_leaves(pp)[0]
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 8
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6), pp, sp
    )
    try:
        pstep(pp, ps, po, (x[:12], y[:12]), jax.random.PRNGKey(0))
    except ValueError as e:
        assert "divisible by the 8 devices" in str(e), e
    else:
        raise AssertionError("a batch of 12 on 8 devices must raise")
    print("OK", len(jax.devices()))
""")


def test_data_parallel_step_on_eight_devices_equals_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split()[-2:] == ["OK", "8"]


def test_mesh_errors():
    with pytest.raises(ValueError, match="no devices given"):
        data_mesh([])
    mesh = data_mesh(jax.devices()[:1], axis="batch")
    with pytest.raises(ValueError, match=r"the mesh has no axis 'data'; its axes: \('batch',\)"):
        import jaxnet as jn

        make_parallel_train_step(jn.MLP([2]), "squared_error", jn.sgd(0.1), mesh=mesh)
