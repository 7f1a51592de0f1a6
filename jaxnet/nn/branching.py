"""Shapes and branching: ``Reshape``, ``parallel``, ``FanOut``, ``FanInSum``, ``FanInConcat`` and ``residual``.

A branch carries a tuple of arrays (and, at ``init``, a tuple of shapes): ``FanOut(n)`` copies
its input into ``n`` branches, ``parallel(f, g)`` runs one layer on each branch, and
``FanInSum()``/``FanInConcat()`` merge them back. ``serial`` threads tuples like arrays, so::

    serial(FanOut(2), parallel(block, Identity()), FanInSum())  ==  residual(block)

As in ``serial``, params and state are dicts keyed by :func:`~jaxnet.nn.combinators.layer_keys`
(``name=`` or kind and position), a sublayer that needs randomness gets ``fold_in(key, i)`` for its
position ``i``, and ``mask`` reaches every sublayer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxnet import _threefry as threefry
from jaxnet.nn.combinators import layer_keys
from jaxnet.nn.core import check_size, fmt_shape, make_layer
from jaxnet.types import Layer


def _check_layers(where: str, layers: Sequence) -> None:
    if not layers:
        raise ValueError(f"{where} needs at least one layer, got none")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            hint = "; call the constructor, e.g. Relu() rather than Relu" if callable(layer) else ""
            raise TypeError(f"{where}: argument {i} must be a Layer, got {layer!r}{hint}")


def _same(a: Sequence[int], b: Sequence[int]) -> bool:
    """Two shapes agree, a ``-1`` (unknown batch) matching any size."""
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b, strict=True))


def _branches(where: str, x, n: int | None = None, *, what: str = "input") -> tuple:
    if not isinstance(x, (tuple, list)):
        shape = tuple(getattr(x, "shape", ()))
        raise TypeError(f"{where} expected a tuple of branches as {what} (e.g. from FanOut), got one of shape {shape}")
    if n is not None and len(x) != n:
        raise ValueError(f"{where} expected a tuple of {n} branches as {what}, one per layer, got {len(x)}")
    if not x:
        raise ValueError(f"{where} expected at least one branch as {what}, got an empty tuple")
    return tuple(x)


def _branch_shapes(where: str, input_shape, n: int | None = None) -> tuple:
    """``input_shape`` as a tuple of branch shapes, or a ``TypeError`` for a single shape."""
    if not input_shape or not isinstance(input_shape[0], tuple):
        raise TypeError(
            f"{where} expected a tuple of branch shapes (e.g. from FanOut), got one shape {tuple(input_shape)}"
        )
    return _branches(where, input_shape, n, what="input_shape")


def _sub_key(key, i: int, layer: Layer):
    return threefry.fold_in(key, i) if (key is not None and layer.needs_key) else None


def Reshape(shape: Sequence[int], *, name: str | None = None) -> Layer:
    """Reshape each sample: ``[batch, *in] -> [batch, *shape]``; the batch axis is kept.

    ``shape`` excludes the batch axis; one entry may be ``-1`` (inferred from the others), as in
    ``jnp.reshape``. ``Reshape((7, 7, 16))`` turns ``[N, 784]`` into ``[N, 7, 7, 16]``.

    Raises:
      TypeError/ValueError: for a shape that is not a sequence of positive ints with at most one
        ``-1``; at init/apply, for an input whose per-sample size does not fit.
    """
    if isinstance(shape, int) or not isinstance(shape, Sequence) or isinstance(shape, str):
        raise TypeError(f"Reshape: shape must be a tuple of ints (without the batch axis), got {shape!r}")
    if any(isinstance(s, bool) or not isinstance(s, int) for s in shape):
        raise TypeError(f"Reshape: shape must be a tuple of ints (without the batch axis), got {shape!r}")
    shape = tuple(shape)
    if sum(s == -1 for s in shape) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"Reshape: shape must hold positive sizes and at most one -1, got {shape}")
    display = f"Reshape({shape})"

    def resolve(in_features: Sequence[int], where: str) -> tuple:
        size = math.prod(in_features)
        known = math.prod(s for s in shape if s != -1)
        if -1 in shape:
            if size % known:
                raise ValueError(
                    f"{display}{where}: cannot reshape samples of shape {tuple(in_features)} ({size} values) "
                    f"to {shape}: {size} is not a multiple of {known}"
                )
            return tuple(size // known if s == -1 else s for s in shape)
        if known != size:
            raise ValueError(
                f"{display}{where}: cannot reshape samples of shape {tuple(in_features)} ({size} values) "
                f"to {shape} ({known} values)"
            )
        return shape

    def init(key, input_shape):
        if any(s == -1 for s in input_shape[1:]):
            raise ValueError(f"{display}.init: the per-sample axes of input_shape must be known, got {input_shape}")
        return (input_shape[0], *resolve(input_shape[1:], ".init")), {}, {}

    def apply(params, state, x, *, key, train):
        if jnp.ndim(x) < 1:
            raise ValueError(f"{display} expected an input with a batch axis, got a scalar")
        return x.reshape(x.shape[:1] + resolve(x.shape[1:], "")), state

    return make_layer(display, init, apply, kind="reshape", config={"shape": shape}, scope=name)


def parallel(*layers: Layer, name: str | None = None) -> Layer:
    """Run layer ``i`` on branch ``i``: ``(x_0, ..., x_{n-1}) -> (f_0(x_0), ..., f_{n-1}(x_{n-1}))``.

    The input is a tuple of ``n`` arrays (``init``: a tuple of ``n`` shapes), one per layer, and so
    is the output. Params and state are dicts keyed by :func:`~jaxnet.nn.combinators.layer_keys`.

    Raises:
      ValueError: for no layers, or an input tuple whose length is not the number of layers.
      TypeError: for an argument that is not a Layer, or an input that is not a tuple.
    """
    _check_layers("parallel()", layers)
    keys = layer_keys(layers)
    display = "parallel(" + ", ".join(layer.name for layer in layers) + ")"
    short = f"parallel({len(layers)} layers)"
    n = len(layers)

    def init(key, input_shape):
        shapes = _branch_shapes(f"{short}.init", input_shape, n)
        out, params, state = [], {}, {}
        for i, (k, layer, s) in enumerate(zip(keys, layers, shapes, strict=True)):
            try:
                o, params[k], state[k] = layer.init(jax.random.fold_in(key, i), s)
            except (ValueError, TypeError) as e:
                raise type(e)(f"{short}, branch {i} ({layer.name}): {e}") from None
            out.append(o)
        return tuple(out), params, state

    def apply(params, state, x, *, key, train, mask):
        xs = _branches(short, x, n)
        ys, new_state = [], {}
        for i, (k, layer, xi) in enumerate(zip(keys, layers, xs, strict=True)):
            y, new_state[k] = layer.apply(params[k], state[k], xi, key=_sub_key(key, i, layer), train=train, mask=mask)
            ys.append(y)
        return tuple(ys), new_state

    needs_key = any(layer.needs_key for layer in layers)
    return make_layer(
        display, init, apply, kind="parallel", layers=layers, needs_key=needs_key, uses_mask=True, scope=name
    )


def FanOut(n: int, *, name: str | None = None) -> Layer:
    """Copy the input into ``n`` branches: ``x -> (x, ..., x)`` (``init``: ``n`` copies of the shape)."""
    check_size("FanOut", "n", n)
    display = f"FanOut({n})"

    def init(key, input_shape):
        return (input_shape,) * n, {}, {}

    def apply(params, state, x, *, key, train):
        return (x,) * n, state

    return make_layer(display, init, apply, kind="fanout", config={"n": n}, scope=name)


def FanInSum(*, name: str | None = None) -> Layer:
    """Sum the branches elementwise into one output; all must have the same shape.

    ``(x_0, x_1, x_2) -> x_0 + x_1 + x_2`` for three branches, and likewise for any number.

    Raises:
      ValueError: at init or apply, for branches of different shapes (no silent broadcasting).
    """
    display = "FanInSum()"

    def check(shapes, where):
        for i, s in enumerate(shapes[1:], 1):
            if not _same(shapes[0], s):
                listed = ", ".join(fmt_shape(t) for t in shapes)
                raise ValueError(
                    f"{display}{where} expected branches of one shape, got {listed} (branch {i} differs from branch 0)"
                )

    def init(key, input_shape):
        shapes = _branch_shapes(f"{display}.init", input_shape)
        check(shapes, ".init")
        merged = tuple(max(d) for d in zip(*shapes, strict=True))  # a known batch size wins over -1
        return merged, {}, {}

    def apply(params, state, x, *, key, train):
        xs = _branches(display, x)
        check([tuple(jnp.shape(b)) for b in xs], "")
        total = xs[0]
        for b in xs[1:]:
            total = total + b
        return total, state

    return make_layer(display, init, apply, kind="fanin_sum", scope=name)


def FanInConcat(axis: int = -1, *, name: str | None = None) -> Layer:
    """Concatenate the branches along ``axis`` (default the last, the features); never the batch axis 0.

    Raises:
      TypeError: for a non-int ``axis``.
      ValueError: at init or apply, for branches of different ranks, different sizes off ``axis``,
        or an ``axis`` that is out of range or the batch axis.
    """
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"FanInConcat: axis must be an int, got {axis!r}")
    display = "FanInConcat()" if axis == -1 else f"FanInConcat(axis={axis})"

    def check(shapes, where) -> int:
        ndim = len(shapes[0])
        if any(len(s) != ndim for s in shapes):
            raise ValueError(
                f"{display}{where} expected branches of one rank, got {', '.join(fmt_shape(s) for s in shapes)}"
            )
        if not -ndim <= axis < ndim or axis % ndim == 0:
            raise ValueError(
                f"{display}{where}: axis={axis} must name a non-batch axis of inputs with {ndim} axes "
                f"(1 to {ndim - 1}, or -1 to {-(ndim - 1)})"
            )
        ax = axis % ndim
        for i, s in enumerate(shapes[1:], 1):
            if not _same(shapes[0][:ax] + shapes[0][ax + 1 :], s[:ax] + s[ax + 1 :]):
                raise ValueError(
                    f"{display}{where} expected branches that differ only on axis {axis}, got "
                    f"{', '.join(fmt_shape(t) for t in shapes)} (branch {i} differs from branch 0)"
                )
        return ax

    def init(key, input_shape):
        shapes = _branch_shapes(f"{display}.init", input_shape)
        ax = check(shapes, ".init")
        if any(s[ax] == -1 for s in shapes):
            raise ValueError(f"{display}.init: the concatenated axis must be known, got {shapes}")
        merged = [max(d) for d in zip(*shapes, strict=True)]
        merged[ax] = sum(s[ax] for s in shapes)
        return tuple(merged), {}, {}

    def apply(params, state, x, *, key, train):
        xs = _branches(display, x)
        ax = check([tuple(jnp.shape(b)) for b in xs], "")
        return jnp.concatenate(xs, axis=ax), state

    return make_layer(display, init, apply, kind="fanin_concat", config={"axis": axis}, scope=name)


def residual(block: Layer, *, name: str | None = None) -> Layer:
    """A residual connection (He et al. 2016): ``y = x + block(x)``.

    ``block``'s params and state are filed under its key (``{"serial_0": ...}``, or its
    ``name=``); it gets ``fold_in(key, 0)`` when it needs randomness, and the mask.

    Raises:
      TypeError: for a ``block`` that is not a Layer.
      ValueError: at init (or apply), when ``block`` changes the shape of its input: the sum would
        otherwise broadcast silently. Add a projection (a ``Dense``) inside, or a ``parallel`` shortcut.
    """
    _check_layers("residual()", (block,))
    (k,) = layer_keys((block,))
    display = f"residual({block.name})"
    short = "residual" if len(display) > 60 else display

    def init(key, input_shape):
        try:
            out, params, state = block.init(jax.random.fold_in(key, 0), input_shape)
        except (ValueError, TypeError) as e:
            raise type(e)(f"{short}, block {block.name}: {e}") from None
        if not _same(out, input_shape):
            raise ValueError(
                f"{short}: the block must keep the shape of its input for x + block(x), but it maps "
                f"{fmt_shape(input_shape)} to {fmt_shape(out)}; make its last layer output {input_shape[-1]} "
                "features, or project the shortcut: serial(FanOut(2), parallel(block, Dense(n)), FanInSum())"
            )
        return input_shape, {k: params}, {k: state}

    def apply(params, state, x, *, key, train, mask):
        fx, new = block.apply(params[k], state[k], x, key=_sub_key(key, 0, block), train=train, mask=mask)
        if jnp.shape(fx) != jnp.shape(x):
            raise ValueError(
                f"{short}: the block maps an input of shape {tuple(jnp.shape(x))} to {tuple(jnp.shape(fx))}; "
                "x + block(x) needs the same shape"
            )
        return x + fx, {k: new}

    return make_layer(
        display, init, apply, kind="residual", layers=(block,), needs_key=block.needs_key, uses_mask=True, scope=name
    )
