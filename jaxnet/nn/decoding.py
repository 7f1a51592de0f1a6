"""Autoregressive generation from a :func:`~jaxnet.nn.transformer_lm` with a key/value cache.

``generate`` runs the prompt through the model once (the *prefill*), keeping every block's keys
and values in a cache preallocated to the model's ``max_len`` positions, then one compiled
``lax.scan`` over the new positions: each step embeds one token, attends with one query position
against the cache and appends its keys and values. A step's work does not grow with the prefix
(the cache has a fixed shape, masked beyond the current position), and nothing is recompiled
for another prompt, key or temperature of the same shapes.

Decoding rule at each position, from the last logits ``l`` (``[batch, vocab]``):

* ``temperature=0.0``: greedy, ``argmax(l)`` (no key needed);
* ``temperature > 0``: sample from ``softmax(l / temperature)``, restricted to the ``top_k``
  largest logits when ``top_k`` is given (Fan et al. 2018); ``top_k=1`` is greedy.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.nn.core import check_real, check_size
from jaxnet.types import Layer, check_key

_FN = "generate"


def _init_cache(config, params, batch: int) -> list:
    """Zero keys and values for every block: a list of ``(k, v)``, each ``[batch, max_len, kv_heads, head_dim]``."""
    cfg = dict(config)
    head_dim = cfg["d_model"] // cfg["num_heads"]
    cache = []
    for i in range(cfg["num_layers"]):
        attn = params[f"block_{i}"]["attention"]
        kv_heads = attn["key"]["w"].shape[1] // head_dim
        dtype = jnp.result_type(params["embedding"]["embedding"], *jax.tree_util.tree_leaves(attn["key"]))
        shape = (batch, cfg["max_len"], kv_heads, head_dim)
        cache.append((jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)))
    return cache


def _pick(logits, key, temperature, greedy: bool, top_k: int | None):
    """The next token of each row of ``logits`` ``[batch, vocab]``: argmax, or a (top-k) sample."""
    if greedy:
        return jnp.argmax(logits, axis=-1)
    scaled = logits.astype(jnp.promote_types(logits.dtype, jnp.float32)) / temperature
    if top_k is not None:
        kth = jax.lax.top_k(scaled, top_k)[0][..., -1:]
        scaled = jnp.where(scaled >= kth, scaled, -jnp.inf)  # ties with the k-th logit stay in
    return jax.random.categorical(key, scaled, axis=-1)


def _model_args(model: Layer) -> dict:
    """The static arguments of :func:`_generate` that describe ``model`` (hashable: one program per model)."""
    sizes = tuple((k, model.config[k]) for k in ("d_model", "num_heads", "num_layers", "max_len", "_cached_step"))
    return {"model_apply": model.apply, "sizes": sizes}


@functools.partial(jax.jit, static_argnames=("model_apply", "sizes", "max_new_tokens", "greedy", "top_k"))
def _generate(params, prompt, key, temperature, *, model_apply, sizes, max_new_tokens, greedy, top_k):
    # the params are checked against the model once per compilation (ParamsMismatchError names the path)
    jax.eval_shape(functools.partial(model_apply, train=False), params, {}, prompt)
    config = dict(sizes)
    step = config["_cached_step"]
    cache = _init_cache(config, params, prompt.shape[0])
    logits, cache = step(params, prompt, cache, 0)
    keys = jax.random.split(key, max_new_tokens)
    first = _pick(logits[:, -1], keys[0], temperature, greedy, top_k).astype(prompt.dtype)

    def body(carry, k):
        token, cache, position = carry
        logits, cache = step(params, token[:, None], cache, position)
        nxt = _pick(logits[:, 0], k, temperature, greedy, top_k).astype(prompt.dtype)
        return (nxt, cache, position + 1), nxt

    start = jnp.asarray(prompt.shape[1], jnp.int32)
    _, rest = jax.lax.scan(body, (first, cache, start), keys[1:])
    return jnp.concatenate([prompt, first[:, None], rest.T.astype(prompt.dtype)], axis=1)


def generate(
    model: Layer,
    params,
    prompt,
    max_new_tokens: int,
    *,
    key=None,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> jax.Array:
    """Continue a batch of prompts by ``max_new_tokens`` tokens with a :func:`~jaxnet.nn.transformer_lm`.

    Autoregressive decoding with a key/value cache (module docstring): the prompt is run once,
    then each new token costs one position of attention against the cache, inside one compiled
    ``lax.scan``. Greedy decoding gives the tokens that running the whole model on the growing
    sequence and taking the argmax of the last position would give, step by step (the tests check
    it, float32 and float64). Evaluation mode: no dropout.

    Args:
      model: a model built by :func:`~jaxnet.nn.transformer_lm` (any positions, norms, grouped-query
        heads, tied or untied head); a ``serial`` around it is not accepted.
      params: that model's params, as its ``init`` made them.
      prompt: integer token ids ``[batch, prompt_len]``, ``prompt_len >= 1``; all prompts of a batch
        have the same length (no padding mask: left-pad or group prompts by length).
      max_new_tokens: how many tokens to add, a positive int; ``prompt_len + max_new_tokens`` must
        not exceed the model's ``max_len`` (the size of the cache).
      key: a ``jax.random`` key; required when sampling (``temperature > 0``), ignored when greedy.
        The same key gives the same tokens, bit for bit.
      temperature: ``0.0`` for greedy decoding (argmax), else ``> 0``: logits are divided by it
        before sampling. A concrete Python number (it selects greedy or sampling before tracing,
        so it cannot itself be a tracer); ``generate`` passes it into its compiled program as an
        argument, so a new temperature does not recompile.
      top_k: sample among the ``top_k`` largest logits only (ties with the k-th kept); ``None``
        for the whole vocabulary. Between 1 and ``vocab_size``.

    Returns:
      ``[batch, prompt_len + max_new_tokens]`` token ids in ``prompt``'s dtype: the prompt, then the
      new tokens.

    Raises:
      TypeError: for a model not built by ``transformer_lm``, non-integer tokens, or non-int sizes.
      ValueError: for a prompt that is not ``[batch, prompt_len]`` or holds ids outside
        ``[0, vocab_size)``, a prompt or prompt plus new tokens longer than ``max_len``, a negative
        or non-finite temperature, a ``top_k`` outside ``[1, vocab_size]``, a missing key when
        sampling, or params of another model (``ParamsMismatchError``).

    Example::

        lm = transformer_lm(vocab_size=50, d_model=32, num_layers=2, num_heads=4, max_len=64)
        _, params, _ = lm.init(jax.random.PRNGKey(0), (-1, 64))
        tokens = generate(lm, params, prompt, 20, key=jax.random.PRNGKey(1), top_k=10)
    """
    if not isinstance(model, Layer) or model.kind != "transformer_lm" or "_cached_step" not in model.config:
        got = f"{model.name} (kind {model.kind!r})" if isinstance(model, Layer) else type(model).__name__
        raise TypeError(f"{_FN}: model must be built by jaxnet.nn.transformer_lm, got {got}")
    cfg = model.config
    max_len, vocab = cfg["max_len"], cfg["vocab_size"]
    prompt = prompt if isinstance(prompt, jax.Array) else jnp.asarray(prompt)
    if not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise TypeError(
            f"{_FN}: prompt must hold integer token ids, got dtype {prompt.dtype}; cast with .astype(jnp.int32)"
        )
    if prompt.ndim != 2 or prompt.shape[1] < 1:
        raise ValueError(f"{_FN}: prompt must have shape [batch, prompt_len] with prompt_len >= 1, got {prompt.shape}")
    new = check_size(_FN, "max_new_tokens", max_new_tokens)
    length = prompt.shape[1]
    if length > max_len:
        raise ValueError(f"{_FN}: the prompt has {length} tokens, more than the model's max_len={max_len}")
    if length + new > max_len:
        raise ValueError(
            f"{_FN}: prompt_len + max_new_tokens = {length} + {new} = {length + new} exceeds the model's "
            f"max_len={max_len} (the size of the key/value cache); ask for at most {max_len - length} new tokens"
        )
    if not isinstance(prompt, jax.core.Tracer):
        ids = np.asarray(prompt)
        if ids.min() < 0 or ids.max() >= vocab:
            raise ValueError(
                f"{_FN}: prompt ids must lie in [0, {vocab}), got min {int(ids.min())}, max {int(ids.max())}"
            )
    temp = check_real(_FN, "temperature", temperature, low=0.0)
    if top_k is not None:
        check_size(_FN, "top_k", top_k)
        if top_k > vocab:
            raise ValueError(f"{_FN}: top_k must be at most vocab_size={vocab}, got {top_k}")
    greedy = temp == 0.0
    if greedy:
        key = jax.random.PRNGKey(0)  # unused: argmax draws nothing
    elif key is None:
        raise ValueError(
            f"{_FN}: sampling with temperature={temperature!r} needs key=jax.random.PRNGKey(...); "
            "pass temperature=0.0 for greedy decoding"
        )
    else:
        check_key(f"{_FN}", key)
    return _generate(
        params,
        prompt,
        key,
        jnp.asarray(temp if not greedy else 1.0, jnp.float32),
        **_model_args(model),
        max_new_tokens=new,
        greedy=greedy,
        top_k=top_k,
    )
