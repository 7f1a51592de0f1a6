"""Recurrent networks: ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``, ``RNN`` over time and ``Bidirectional``.

A *cell* is a :class:`~jaxnet.types.Layer` for one time step. Its ``init(key, (batch, in_features))``
builds the params; its ``apply`` maps a pair ``(carry, x_t)`` to ``(new_carry, y_t)``::

    (new_carry, y_t), state = cell.apply(params, state, (carry, x_t), train=False)

The carry is ``h`` (``[batch, H]``) for ``SimpleRNNCell`` and ``GRUCell`` and the pair ``(h, c)`` for
``LSTMCell``; :func:`initial_carry` builds zeros of the right structure. The equations and gate
orders are PyTorch's (``nn.RNNCell``, ``nn.LSTMCell``, ``nn.GRUCell``), with the weights stored
transposed (``x @ w``), so PyTorch's ``weight_ih``/``weight_hh`` load as ``w_i = weight_ih.T``,
``w_h = weight_hh.T``.

:func:`RNN` runs a cell over axis 1 of ``[batch, time, features]`` with ``lax.scan``. With a
``[batch, time]`` mask, padded steps keep the carry and output zeros, so a padded batch gives each
sequence's own outputs and final state (and ``reverse=True`` runs over the real steps only, as
PyTorch's packed sequences).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxnet.nn import initializers
from jaxnet.nn.core import check_size, make_layer
from jaxnet.types import Array, Layer

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _cell_init(display: str, sizes: dict, w_init, dtype):
    def init(key, input_shape):
        if len(input_shape) != 2 or input_shape[-1] == -1:
            raise ValueError(
                f"{display}.init expected the shape of one step, [batch, in_features] with in_features known, "
                f"got {tuple(input_shape)}; run a cell over time with RNN(cell)"
            )
        n_in = input_shape[-1]
        keys = jax.random.split(key, len(sizes))
        params = {
            k: w_init(kk, tuple(n_in if d == "in" else d for d in shape), dtype)
            for kk, (k, shape) in zip(keys, sizes.items(), strict=True)
        }
        hidden = sizes["w_h"][0]
        return (input_shape[0], hidden), params, {}

    return init


def _check_step(display: str, params, step, lstm: bool):
    """Split and check ``(carry, x_t)``; returns ``(h, c_or_None, x)``."""
    if not isinstance(step, (tuple, list)) or len(step) != 2:
        raise TypeError(f"{display}.apply expected a pair (carry, x_t), got {type(step).__name__}")
    carry, x = step
    x = jnp.asarray(x)
    n_in, hidden = params["w_i"].shape[0], params["w_h"].shape[0]
    if x.ndim != 2 or x.shape[-1] != n_in:
        raise ValueError(f"{display} expected x_t of shape [batch, {n_in}], got {tuple(x.shape)}")
    want = (x.shape[0], hidden)
    if lstm:
        if not isinstance(carry, (tuple, list)) or len(carry) != 2:
            raise ValueError(f"{display} expected the carry as a pair (h, c), each of shape {want}, got {carry!r:.80}")
        h, c = (jnp.asarray(a) for a in carry)
        if h.shape != want or c.shape != want:
            raise ValueError(
                f"{display} expected the carry (h, c) with shapes {want}, got {tuple(h.shape)} and {tuple(c.shape)}"
            )
        return h, c, x
    if isinstance(carry, (tuple, list)):
        raise ValueError(f"{display} expected the carry h of shape {want}, got a tuple")
    h1 = jnp.asarray(carry)
    if h1.shape != want:
        raise ValueError(f"{display} expected the carry h of shape {want}, got {tuple(h1.shape)}")
    return h1, None, x


def _uniform_default(w_init, hidden: int, display: str):
    # PyTorch's recurrent default: every weight and bias U(-1/sqrt(H), 1/sqrt(H))
    return initializers.get(initializers.uniform(1.0 / math.sqrt(hidden)) if w_init is None else w_init, where=display)


def SimpleRNNCell(
    features: int, activation: str = "tanh", w_init=None, *, name: str | None = None, dtype=jnp.float32
) -> Layer:
    """Elman RNN step (PyTorch ``nn.RNNCell``): ``h' = act(x W_i + h W_h + b)``; output ``h'``.

    Args:
      features: hidden size ``H``.
      activation: ``"tanh"`` (default) or ``"relu"``.
      w_init: initializer of every param; default ``U(-1/sqrt(H), 1/sqrt(H))`` (PyTorch's).
      name: the key ``serial``/``RNN`` files the params under.
      dtype: dtype of the params.

    Params: ``{"w_i": [in, H], "w_h": [H, H], "b": [H]}``; from PyTorch: ``w_i = weight_ih.T``,
    ``w_h = weight_hh.T``, ``b = bias_ih + bias_hh``. Carry ``h``: ``[batch, H]``.

    Raises:
      ValueError: for a non-positive ``features`` or an unknown activation; at apply, for a step or
        carry of the wrong shape.
    """
    check_size("SimpleRNNCell", "features", features)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"SimpleRNNCell: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    display = f"SimpleRNNCell({features})" if activation == "tanh" else f"SimpleRNNCell({features}, {activation!r})"
    act = _ACTIVATIONS[activation]
    sizes = {"w_i": ("in", features), "w_h": (features, features), "b": (features,)}
    init = _cell_init(display, sizes, _uniform_default(w_init, features, f"{display} w_init"), dtype)

    def apply(params, state, step, *, key, train):
        h, _, x = _check_step(display, params, step, lstm=False)
        h = act(x @ params["w_i"] + h @ params["w_h"] + params["b"])
        return (h, h), state

    config = {"features": features, "activation": activation, "carry": "h"}
    return make_layer(display, init, apply, kind="simple_rnn_cell", config=config, scope=name)


def lstm_gates(params, x: Array, h: Array, c: Array) -> tuple[Array, Array, tuple]:
    """One LSTM step: ``(h, c, (i, f, g, o, tanh c))``, the gates after their sigmoid/tanh.

    Shared by :func:`LSTMCell` and the handwritten backprop through time, which keeps the gates.
    """
    i, f, g, o = jnp.split(x @ params["w_i"] + h @ params["w_h"] + params["b"], 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
    c = f * c + i * g
    tc = jnp.tanh(c)
    return o * tc, c, (i, f, g, o, tc)


def gru_gates(params, x: Array, h: Array) -> tuple[Array, tuple]:
    """One GRU step: ``(h, (r, z, n, u_n))`` with ``u_n = h W_hn + b_hn`` (PyTorch's placement of ``r``).

    Shared by :func:`GRUCell` and the handwritten backprop through time, which keeps the gates.
    """
    a_r, a_z, a_n = jnp.split(x @ params["w_i"] + params["b_i"], 3, axis=-1)
    u_r, u_z, u_n = jnp.split(h @ params["w_h"] + params["b_h"], 3, axis=-1)
    r = jax.nn.sigmoid(a_r + u_r)
    z = jax.nn.sigmoid(a_z + u_z)
    n = jnp.tanh(a_n + r * u_n)
    return (1.0 - z) * n + z * h, (r, z, n, u_n)


def LSTMCell(features: int, w_init=None, *, name: str | None = None, dtype=jnp.float32) -> Layer:
    """Long short-term memory step (Hochreiter & Schmidhuber 1997; PyTorch ``nn.LSTMCell``).

    With ``[i, f, g, o] = split(x W_i + h W_h + b, 4)`` (that order)::

        i, f, o = sigmoid(i), sigmoid(f), sigmoid(o);  g = tanh(g)
        c' = f * c + i * g;  h' = o * tanh(c');  output h'

    Args:
      features: hidden size ``H``.
      w_init: initializer of every param; default ``U(-1/sqrt(H), 1/sqrt(H))`` (PyTorch's).
      name: the key ``serial``/``RNN`` files the params under.
      dtype: dtype of the params.

    Params: ``{"w_i": [in, 4H], "w_h": [H, 4H], "b": [4H]}``; from PyTorch: ``w_i = weight_ih.T``,
    ``w_h = weight_hh.T``, ``b = bias_ih + bias_hh``. Carry ``(h, c)``, each ``[batch, H]``.

    Raises:
      ValueError: for a non-positive ``features``; at apply, for a step or carry of the wrong shape.
    """
    check_size("LSTMCell", "features", features)
    display = f"LSTMCell({features})"
    sizes = {"w_i": ("in", 4 * features), "w_h": (features, 4 * features), "b": (4 * features,)}
    init = _cell_init(display, sizes, _uniform_default(w_init, features, f"{display} w_init"), dtype)

    def apply(params, state, step, *, key, train):
        h, c, x = _check_step(display, params, step, lstm=True)
        h, c, _ = lstm_gates(params, x, h, c)
        return ((h, c), h), state

    return make_layer(display, init, apply, kind="lstm_cell", config={"features": features, "carry": "hc"}, scope=name)


def GRUCell(features: int, w_init=None, *, name: str | None = None, dtype=jnp.float32) -> Layer:
    """Gated recurrent unit step (Cho et al. 2014; PyTorch ``nn.GRUCell``).

    With ``[a_r, a_z, a_n] = split(x W_i + b_i, 3)`` and ``[u_r, u_z, u_n] = split(h W_h + b_h, 3)``::

        r = sigmoid(a_r + u_r);  z = sigmoid(a_z + u_z)
        n = tanh(a_n + r * u_n);  h' = (1 - z) * n + z * h;  output h'

    Args:
      features: hidden size ``H``.
      w_init: initializer of every param; default ``U(-1/sqrt(H), 1/sqrt(H))`` (PyTorch's).
      name: the key ``serial``/``RNN`` files the params under.
      dtype: dtype of the params.

    Params: ``{"w_i": [in, 3H], "w_h": [H, 3H], "b_i": [3H], "b_h": [3H]}``, gates ``(r, z, n)``; from
    PyTorch: ``w_i = weight_ih.T``, ``w_h = weight_hh.T``, ``b_i = bias_ih``, ``b_h = bias_hh``.
    Carry ``h``: ``[batch, H]``.

    Raises:
      ValueError: for a non-positive ``features``; at apply, for a step or carry of the wrong shape.
    """
    check_size("GRUCell", "features", features)
    display = f"GRUCell({features})"
    sizes = {
        "w_i": ("in", 3 * features),
        "w_h": (features, 3 * features),
        "b_i": (3 * features,),
        "b_h": (3 * features,),
    }
    init = _cell_init(display, sizes, _uniform_default(w_init, features, f"{display} w_init"), dtype)

    def apply(params, state, step, *, key, train):
        h, _, x = _check_step(display, params, step, lstm=False)
        h, _ = gru_gates(params, x, h)
        return (h, h), state

    return make_layer(display, init, apply, kind="gru_cell", config={"features": features, "carry": "h"}, scope=name)


_CELL_KINDS = ("simple_rnn_cell", "lstm_cell", "gru_cell")


def initial_carry(cell: Layer, batch: int, dtype=jnp.float32):
    """Zeros of ``cell``'s carry for ``batch`` sequences: ``h`` or ``(h, c)``, each ``[batch, H]``.

    Raises:
      TypeError: for a layer that is not one of this module's cells.
    """
    if not isinstance(cell, Layer) or cell.kind not in _CELL_KINDS:
        raise TypeError(f"initial_carry: expected SimpleRNNCell, LSTMCell or GRUCell, got {cell!r}")
    h = jnp.zeros((batch, cell.config["features"]), dtype)
    return (h, h) if cell.config["carry"] == "hc" else h


def _carry_shape(cell: Layer, batch: int):
    s = (batch, cell.config["features"])
    return (s, s) if cell.config["carry"] == "hc" else s


def _check_cell(where: str, cell) -> Layer:
    if not isinstance(cell, Layer) or cell.kind not in _CELL_KINDS:
        hint = "; call the constructor, e.g. LSTMCell(32)" if callable(cell) and not isinstance(cell, Layer) else ""
        raise TypeError(f"{where}: cell must be SimpleRNNCell, LSTMCell or GRUCell, got {cell!r}{hint}")
    return cell


def scan_inputs(cell: Layer, params, x, carry0, mask):
    """What a scan of ``cell`` over ``x`` ``[batch, time, features]`` starts from.

    Returns ``(ctype, carry0, steps, real, y0)``: the compute dtype, the initial carry in it (zeros
    when ``carry0`` is ``None``), the time-major inputs, the time-major token mask (``None`` without a
    ``[batch, time]`` mask) and the zero output. Shared by :func:`RNN` and the handwritten BPTT.
    """
    batch = x.shape[0]
    ctype = jnp.result_type(x.dtype, *jax.tree.leaves(params))
    if carry0 is None:
        carry0 = initial_carry(cell, batch, ctype)
    else:
        carry0 = jax.tree.map(lambda a: jnp.asarray(a, ctype), tuple(carry0) if isinstance(carry0, list) else carry0)
    real = None if (mask is None or jnp.ndim(mask) < 2) else jnp.swapaxes(jnp.asarray(mask) > 0, 0, 1)
    return ctype, carry0, jnp.swapaxes(x, 0, 1), real, jnp.zeros((batch, cell.config["features"]), ctype)


def masked_step(carry, last, new, y, m_t, ctype):
    """One recurrent step under a token mask: ``(new_carry, output, last_real_output)`` in ``ctype``.

    Where ``m_t`` (``[batch]`` bools, or ``None`` for no mask) is false, the carry is kept and the
    output is zeros; ``last`` follows the output of the last real step. Shared by :func:`RNN` and the
    handwritten backprop through time (:mod:`jaxnet.autodiff.seq_rules`).
    """
    y = y.astype(ctype)
    new = jax.tree.map(lambda a: a.astype(ctype), new)
    if m_t is None:
        return new, y, y
    keep = m_t[:, None]
    new = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, carry)
    y = jnp.where(keep, y, jnp.zeros((), ctype))
    return new, y, jnp.where(keep, y, last)


def RNN(
    cell: Layer,
    return_sequences: bool = True,
    reverse: bool = False,
    unroll: int = 1,
    *,
    return_state: bool = False,
    name: str | None = None,
) -> Layer:
    """Run a recurrent ``cell`` over axis 1 (time) of ``[batch, time, features]`` with ``lax.scan``.

    ``carry_0 = 0`` (or the given one); step ``t`` computes ``(carry_t, y_t) = cell((carry_{t-1}, x_t))``.

    Initial and final states, within ``init``/``apply``: the input may be ``x`` or a pair
    ``(x, carry_0)`` (``init`` then takes ``(x_shape, carry_shape)``); with ``return_state=True``
    the output is the pair ``(y, final_carry)`` (output shape ``(y_shape, carry_shape)``). The carry
    is ``h`` or ``(h, c)`` (``LSTMCell``), each ``[batch, H]``.

    Masks: a ``[batch, time]`` mask of real tokens makes every padded step keep the carry and output
    zeros, so each sequence's outputs and final state are those of the sequence run alone; with
    ``reverse=True`` the cell runs over each sequence's real steps only, last to first (PyTorch's
    packed sequences). A ``[batch]`` mask is ignored (samples never mix).

    Args:
      cell: a ``SimpleRNNCell``, ``LSTMCell`` or ``GRUCell``; the RNN's params are the cell's.
      return_sequences: output every step ``[batch, time, H]`` (default) or only the output of the
        last real step ``[batch, H]`` (for ``reverse=True``, the step at position 0).
      reverse: run from the last step to the first; outputs stay at their positions.
      unroll: steps per scan iteration (``lax.scan``'s ``unroll``), a positive int.
      return_state: also return the final carry (see above).
      name: the key ``serial`` files the params under (default ``rnn_<position>``).

    Raises:
      TypeError: for a ``cell`` that is not one of the three cells.
      ValueError: at init/apply, for an input that is not 3-D, features other than ``init`` saw, or
        an initial carry of the wrong structure or shape.
    """
    cell = _check_cell("RNN", cell)
    check_size("RNN", "unroll", unroll)
    display = f"RNN({cell.name}" + ", return_sequences=False" * (not return_sequences) + ", reverse=True" * reverse
    display += ", return_state=True" * return_state + ")"
    hidden = cell.config["features"]

    def split(x):
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise ValueError(f"{display} expected x or a pair (x, initial_carry), got a tuple of {len(x)}")
            return x[0], x[1]
        return x, None

    def check_x(shape, where: str) -> None:
        if len(shape) != 3:
            raise ValueError(
                f"{display}{where} expected input of shape [batch, time, features], got {tuple(shape)}"
                + ("; add a time axis, e.g. x[:, None, :]" if len(shape) == 2 else "")
            )

    def check_carry(got, batch: int, where: str, *, shapes: bool) -> None:
        """``got``: the carry (arrays), or at init its shape(s); ``h`` or a pair ``(h, c)``."""
        want = _carry_shape(cell, batch)
        pair = cell.config["carry"] == "hc"
        leaf = (
            (lambda a: isinstance(a, tuple) and all(isinstance(i, int) for i in a))
            if shapes
            else (lambda a: hasattr(a, "shape"))
        )
        parts = list(got) if (pair and isinstance(got, (tuple, list)) and len(got) == 2) else [got]
        ok = (len(parts) == 2) == pair and all(leaf(p) for p in parts)
        got_shapes = [tuple(p) if shapes else tuple(p.shape) for p in parts] if ok else None
        wants = list(want) if pair else [want]
        if ok:
            ok = all(
                g[1:] == w[1:] and (g[0] == w[0] or -1 in (g[0], w[0]))
                for g, w in zip(got_shapes or [], wants, strict=True)
            )
        if not ok:
            what = "a pair (h, c) with shapes" if pair else "h of shape"
            shown = (
                tuple(got_shapes) if (got_shapes and pair) else (got_shapes[0] if got_shapes else type(got).__name__)
            )
            raise ValueError(f"{display}{where} expected the initial carry as {what} {want}, got {shown}")

    def init(key, input_shape):
        x_shape, c_shape = (
            (input_shape[0], input_shape[1]) if isinstance(input_shape[0], tuple) else (input_shape, None)
        )
        check_x(x_shape, ".init")
        if c_shape is not None:
            # a carry shape is a tuple of ints (h) or a pair of them (h, c)
            check_carry(c_shape, x_shape[0], ".init", shapes=True)
        _, params, state = cell.init(key, (x_shape[0], x_shape[2]))
        y_shape = (x_shape[0], x_shape[1], hidden) if return_sequences else (x_shape[0], hidden)
        return ((y_shape, _carry_shape(cell, x_shape[0])) if return_state else y_shape), params, state

    def apply(params, state, x, *, key, train, mask):
        x, carry0 = split(x)
        x = jnp.asarray(x)
        check_x(x.shape, "")
        if carry0 is not None:
            check_carry(carry0, x.shape[0], "", shapes=False)
        ctype, carry0, steps, real, y0 = scan_inputs(cell, params, x, carry0, mask)

        def step(loop, inputs):
            carry, last = loop
            x_t, m_t = inputs
            (new, y), _ = cell.apply(params, state, (carry, x_t), train=train)
            new, y, last = masked_step(carry, last, new, y, m_t, ctype)
            return (new, last), y

        (final, last), ys = jax.lax.scan(step, (carry0, y0), (steps, real), reverse=reverse, unroll=unroll)
        y = jnp.swapaxes(ys, 0, 1) if return_sequences else last
        return ((y, final) if return_state else y), state

    config = {"return_sequences": return_sequences, "reverse": reverse, "unroll": unroll, "return_state": return_state}
    return make_layer(display, init, apply, kind="rnn", config=config, layers=(cell,), scope=name, uses_mask=True)


_MERGES = {
    "concat": lambda a, b: jnp.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mean": lambda a, b: (a + b) / 2,
    "mul": lambda a, b: a * b,
}


def Bidirectional(forward: Layer, backward: Layer, merge: str = "concat", *, name: str | None = None) -> Layer:
    """Run two ``RNN`` layers, one forward and one ``reverse=True``, on the same input and merge their outputs.

    Each sees the same mask, so with a ``[batch, time]`` mask the backward one runs over each
    sequence's real steps only (as PyTorch's bidirectional LSTM on packed sequences).

    Args:
      forward: an ``RNN(..., reverse=False)``.
      backward: an ``RNN(..., reverse=True)`` with the same ``return_sequences``.
      merge: ``"concat"`` (last axis, forward first), ``"sum"``, ``"mean"`` or ``"mul"``.
      name: the key ``serial`` files the params under (default ``bidirectional_<position>``).

    Params: ``{"forward": ..., "backward": ...}``, the two RNNs' params. No state.

    Raises:
      TypeError: for layers that are not ``RNN``.
      ValueError: for directions or ``return_sequences`` that do not match, ``return_state=True``,
        or an unknown ``merge``.
    """
    for nm, layer, rev in (("forward", forward, False), ("backward", backward, True)):
        if not isinstance(layer, Layer) or layer.kind != "rnn":
            raise TypeError(f"Bidirectional: {nm} must be an RNN(cell, ...) layer, got {layer!r}")
        if layer.config["reverse"] is not rev:
            raise ValueError(f"Bidirectional: {nm} must be built with reverse={rev}, got {layer!r}")
        if layer.config["return_state"]:
            raise ValueError(f"Bidirectional: {nm} must not return its state (return_state=False), got {layer!r}")
    if forward.config["return_sequences"] != backward.config["return_sequences"]:
        raise ValueError(
            f"Bidirectional: forward and backward must agree on return_sequences, got {forward!r} and {backward!r}"
        )
    if merge not in _MERGES:
        raise ValueError(f"Bidirectional: merge must be one of {list(_MERGES)}, got {merge!r}")
    display = f"Bidirectional({forward!r}, {backward!r}" + (f", merge={merge!r})" if merge != "concat" else ")")

    def init(key, input_shape):
        kf, kb = jax.random.split(key)
        shape_f, pf, sf = forward.init(kf, input_shape)
        shape_b, pb, sb = backward.init(kb, input_shape)
        out = (*shape_f[:-1], shape_f[-1] + shape_b[-1]) if merge == "concat" else shape_f
        return out, {"forward": pf, "backward": pb}, {"forward": sf, "backward": sb}

    def apply(params, state, x, *, key, train, mask):
        yf, sf = forward.apply(params["forward"], state["forward"], x, train=train, mask=mask)
        yb, sb = backward.apply(params["backward"], state["backward"], x, train=train, mask=mask)
        return _MERGES[merge](yf, yb), {"forward": sf, "backward": sb}

    return make_layer(
        display,
        init,
        apply,
        kind="bidirectional",
        config={"merge": merge},
        layers=(forward, backward),
        scope=name,
        uses_mask=True,
    )
