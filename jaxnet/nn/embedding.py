"""Embedding: a lookup table from integer ids to learned vectors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.nn import initializers
from jaxnet.nn.core import check_size, make_layer
from jaxnet.types import Layer


def lookup(table: jax.Array, ids: jax.Array) -> jax.Array:
    """``table[ids]`` with a row of NaN for every id outside ``[0, len(table))``.

    Never reads another row for a bad id (no clamping, no wrapping of negative ids), so
    under ``jit``, where ids cannot be checked, a bad id shows up as non-finite values.
    """
    n = table.shape[0]
    valid = (ids >= 0) & (ids < n)
    rows = jnp.take(table, jnp.clip(ids, 0, n - 1), axis=0)
    return jnp.where(valid[..., None], rows, jnp.asarray(jnp.nan, table.dtype))


def Embedding(
    num_embeddings: int,
    features: int,
    w_init=None,
    *,
    name: str | None = None,
    dtype=jnp.float32,
) -> Layer:
    """A table of ``num_embeddings`` learned vectors of size ``features``: ``y[..., :] = W[x[...], :]``.

    Integer ids of any shape ``[batch, ...]`` map to ``[batch, ..., features]``; the output dtype
    is ``dtype``. The usual first layer of a language model (token ids to vectors).

    Out-of-range ids (negative, or ``>= num_embeddings``) are never silently read as another row:

    * on concrete input (``apply`` called outside ``jit``) they raise ``ValueError``;
    * under ``jit``/``vmap``/``grad``, where ids are traced and cannot be checked, each bad id's
      output row is NaN, so a loss goes non-finite and the training loop's non-finite guard stops
      (and its gradient contributes nothing to the table).

    Args:
      num_embeddings: number of rows (the vocabulary size), a positive int.
      features: size of each vector, a positive int.
      w_init: initializer of the ``[num_embeddings, features]`` table; default ``normal(1.0)``,
        ``N(0, 1)`` as PyTorch's ``nn.Embedding``.
      name: the key ``serial`` files the params under (default ``embedding_<position>``).
      dtype: dtype of the table and of the output.

    Params: ``{"embedding": [num_embeddings, features]}``. No state.

    Raises:
      TypeError: for non-int sizes; at apply, for input that is not integer (float or bool ids).
      ValueError: for non-positive sizes; at apply, for an out-of-range id in concrete input.
    """
    check_size("Embedding", "num_embeddings", num_embeddings)
    check_size("Embedding", "features", features)
    display = f"Embedding({num_embeddings}, {features})"
    w_init = initializers.get(initializers.normal(1.0) if w_init is None else w_init, where=f"{display} w_init")

    def init(key, input_shape):
        return (*input_shape, features), {"embedding": w_init(key, (num_embeddings, features), dtype)}, {}

    def apply(params, state, x, *, key, train):
        x = jnp.asarray(x) if not isinstance(x, jax.Array) else x
        if not jnp.issubdtype(x.dtype, jnp.integer):
            raise TypeError(
                f"{display} expected integer ids (e.g. int32), got an input of dtype {x.dtype} and shape "
                f"{tuple(x.shape)}; cast ids with .astype(jnp.int32)"
            )
        table = params["embedding"]
        if tuple(table.shape) != (num_embeddings, features):
            raise ValueError(
                f"{display}: params['embedding'] must have shape {(num_embeddings, features)}, got {tuple(table.shape)}"
            )
        if not isinstance(x, jax.core.Tracer):
            ids = np.asarray(x)
            bad = (ids < 0) | (ids >= num_embeddings)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"{display}: ids must lie in [0, {num_embeddings}), got {int(ids[first])} at index {first} "
                    f"({int(bad.sum())} out of range, min {int(ids.min())}, max {int(ids.max())})"
                )
        return lookup(table, x), state

    config = {"num_embeddings": num_embeddings, "features": features}
    return make_layer(display, init, apply, kind="embedding", config=config, scope=name)
