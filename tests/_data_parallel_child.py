"""Run by tests/test_train_data_parallel.py in a subprocess with 8 forced CPU devices; prints JSON."""

import json
import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)

import jax.numpy as jnp  # noqa: E402

from jaxnet import nn  # noqa: E402
from jaxnet import optim as O  # noqa: E402
from jaxnet import train as T  # noqa: E402
from jaxnet.train import epoch as E  # noqa: E402
from jaxnet.train.distributed import replicate_global  # noqa: E402

LOSS = "softmax_cross_entropy_with_integer_labels"


def maxdiff(a, b):
    return max(
        float(jnp.max(jnp.abs(u - v)))
        for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


def main():
    out = {"devices": jax.device_count()}
    x = jax.random.normal(jax.random.PRNGKey(1), (256, 10))
    y = (jnp.arange(256) % 3).astype(jnp.int32)
    model = nn.MLP([32, 3])
    kw = dict(
        epochs=3,
        batch_size=32,
        key=jax.random.PRNGKey(0),
        progress=False,
        validation=0.25,
        metrics={"accuracy": nn.losses.accuracy},
    )
    one = T.fit(model, LOSS, O.adam(1e-2), (x, y), **kw)
    mesh = T.data_mesh()
    eight = T.fit(model, LOSS, O.adam(1e-2), (x, y), mesh=mesh, **kw)
    out["fit_params_diff"] = maxdiff(one.params, eight.params)
    out["fit_loss"] = [one.history.records[-1]["val_loss"], eight.history.records[-1]["val_loss"]]
    out["replicated"] = all(
        a.sharding.is_fully_replicated and len(a.sharding.device_set) == 8
        for a in jax.tree_util.tree_leaves(eight.params)
    )
    # the compiled epoch all-reduces gradients: the batch really is split over the devices
    cache = E.run_epochs_jit._cache_size()
    out["compiled_programs"] = cache
    ens1 = T.fit_ensemble(
        model, LOSS, O.sgd(0.1), (x, y), members=2, epochs=2, batch_size=32, key=jax.random.PRNGKey(0), progress=False
    )
    ens8 = T.fit_ensemble(
        model,
        LOSS,
        O.sgd(0.1),
        (x, y),
        members=2,
        epochs=2,
        batch_size=32,
        key=jax.random.PRNGKey(0),
        progress=False,
        mesh=mesh,
    )
    out["ensemble_params_diff"] = maxdiff(ens1.params, ens8.params)
    try:
        T.fit(
            model,
            LOSS,
            O.adam(1e-2),
            (x, y),
            epochs=1,
            batch_size=12,
            key=jax.random.PRNGKey(0),
            mesh=mesh,
            progress=False,
        )
        out["bad_batch"] = None
    except ValueError as e:
        out["bad_batch"] = str(e)
    if "--hlo" in sys.argv:
        cfg = E.make_config(model, LOSS, O.sgd(0.1), n=256, batch_size=32, mesh=mesh)
        _, p, s = model.init(jax.random.PRNGKey(0), (-1, 10))
        carry = replicate_global(E.initial_carry(cfg, p, s, O.sgd(0.1).init(p)), mesh)
        args = replicate_global((x, y, jnp.ones(256), jax.random.PRNGKey(0), jnp.arange(1), jnp.ones(1, bool)), mesh)
        hlo = E.run_epochs_jit.lower(cfg, carry, args[0], args[1], args[2], None, *args[3:]).compile().as_text()
        out["all_reduce"] = "all-reduce" in hlo
    print("RESULT " + json.dumps(out))


main()
