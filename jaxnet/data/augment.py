"""Random image augmentation for training batches (§4.4.4), usable inside ``jax.jit`` and ``jax.vmap``.

Images are batches ``[N, H, W]`` or ``[N, H, W, C]`` of a floating dtype (a 3-D array is
always read as ``N`` grey images). Flat inputs such as the digits ``[N, 64]`` must be reshaped
to ``[N, 8, 8]`` first (the training engine does this itself for its image models).

Randomness: every random transform takes ``(key, images, ...)``, splits ``key`` into one key
per sample and draws that sample's parameters (angle, factor, flip, noise) from its own key.
The same key gives the same output, bit for bit.

Geometry: a transform maps output pixel ``p`` (row, column, measured from the image centre
``((H - 1) / 2, (W - 1) / 2)``) to the input location ``A p`` and samples the input there with
**bilinear interpolation** (``order=1``; ``order=0`` is nearest neighbour) through
``jax.scipy.ndimage.map_coordinates``. Locations outside the input read the **constant
``cval = 0``** (``mode="constant"``; ``"nearest"``, ``"reflect"``, ``"mirror"`` and ``"wrap"``
are accepted too). The output has the input's size. Conventions, for an image shown with row 0
at the top:

* ``rotate``: counter-clockwise by the angle in radians (``pi / 2`` equals ``np.rot90``).
* ``zoom``: by factor ``s`` about the centre (``s > 1`` enlarges, ``s < 1`` shrinks and pads with ``cval``).
* ``stretch``: factor ``s_row`` along the rows (vertical) and ``s_col`` along the columns.
* ``shear``: column shift ``k * row`` (row measured downward from the centre).
* ``flip_horizontal`` mirrors left-right, ``flip_vertical`` top-bottom; both exact (no interpolation).
* ``add_noise``: independent ``U[-eps, eps]`` per pixel (and channel), so ``|noise| <= eps``.

:func:`make_augment` fuses rotation, zoom, shear and stretch into one affine map, so a sample
is interpolated once, not once per transform; :func:`pipeline` chains any ``(key, images)``
functions in order.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

from jaxnet.types import Array, check_key

_MODES = ("constant", "nearest", "reflect", "mirror", "wrap")


# ---------------------------------------------------------------- validation
def _check_images(fn: str, images):
    images = jnp.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"{fn}: expected an image batch [N, H, W] or [N, H, W, C], got shape {images.shape}; "
            "reshape flat inputs first, e.g. digits [N, 64] -> [N, 8, 8]"
        )
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: images must have a floating dtype, got {images.dtype}; "
            "convert them first, e.g. images.astype(jnp.float32) / 255"
        )
    return images


def _number(fn: str, name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{fn}: {name} must be a finite number, got {v!r}")
    return float(v)


def _range(fn: str, name: str, value, *, positive: bool = False):
    """Validate a ``(lo, hi)`` range of Python numbers with ``lo <= hi`` (and ``lo > 0`` if ``positive``)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{fn}: {name} must be a (lo, hi) pair, got {value!r}")
    lo, hi = (_number(fn, name, v) for v in value)
    if lo > hi:
        raise ValueError(f"{fn}: {name} is inverted, got (lo, hi) = {value!r}; expected lo <= hi")
    if positive and lo <= 0:
        raise ValueError(f"{fn}: {name} must hold factors > 0, got {value!r}")
    return lo, hi


def _probability(fn: str, p) -> float:
    p = _number(fn, "p", p)
    if not 0 <= p <= 1:
        raise ValueError(f"{fn}: p must be a probability in [0, 1], got {p!r}")
    return p


def _interp(fn: str, order, mode):
    if order not in (0, 1):
        raise ValueError(f"{fn}: order must be 0 (nearest) or 1 (bilinear), got {order!r}")
    if mode not in _MODES:
        raise ValueError(f"{fn}: mode must be one of {_MODES}, got {mode!r}")


def _sample_keys(key, n: int):
    check_key("augment", key)
    return jax.random.split(key, n)


# ---------------------------------------------------------------- matrices (output -> input, centred (row, col))
def rotation_matrix(angle: float | Array) -> Array:
    """The input-from-output matrix of a counter-clockwise rotation by ``angle`` (radians)."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    return jnp.stack([jnp.stack([c, s], -1), jnp.stack([-s, c], -1)], -2)


def stretch_matrix(row_factor: float | Array, col_factor: float | Array) -> Array:
    """The input-from-output matrix of a scaling by ``row_factor`` vertically and ``col_factor`` horizontally."""
    row_factor, col_factor = jnp.broadcast_arrays(jnp.asarray(row_factor), jnp.asarray(col_factor))
    zero = jnp.zeros_like(row_factor)
    return jnp.stack([jnp.stack([1 / row_factor, zero], -1), jnp.stack([zero, 1 / col_factor], -1)], -2)


def shear_matrix(k: float | Array) -> Array:
    """The input-from-output matrix of the shear ``col_out = col_in + k * row_in``."""
    k = jnp.asarray(k)
    one, zero = jnp.ones_like(k), jnp.zeros_like(k)
    return jnp.stack([jnp.stack([one, zero], -1), jnp.stack([-k, one], -1)], -2)


# ---------------------------------------------------------------- deterministic warps
def _warp_one(image, a, order, mode, cval):
    h, w = image.shape[:2]
    dtype = image.dtype
    cy, cx = (h - 1) / 2, (w - 1) / 2
    r, c = jnp.meshgrid(jnp.arange(h, dtype=dtype) - cy, jnp.arange(w, dtype=dtype) - cx, indexing="ij")
    a = a.astype(dtype)
    coords = [a[0, 0] * r + a[0, 1] * c + cy, a[1, 0] * r + a[1, 1] * c + cx]
    sample = functools.partial(map_coordinates, coordinates=coords, order=order, mode=mode, cval=cval)
    if image.ndim == 2:
        return sample(image)
    return jax.vmap(lambda ch: sample(ch), in_axes=-1, out_axes=-1)(image)


def affine(images: Array, matrices: Array, *, order: int = 1, mode: str = "constant", cval: float = 0.0) -> Array:
    """Resample every image at ``A p`` for each output pixel ``p`` (centred (row, col) coordinates).

    Args:
      images: [N, H, W] or [N, H, W, C].
      matrices: input-from-output matrices, [2, 2] for all images or [N, 2, 2] one per image.
      order: 1 bilinear (default) or 0 nearest neighbour.
      mode: boundary mode; ``"constant"`` fills with ``cval``.
      cval: the fill value of ``mode="constant"``.

    Returns:
      the warped images, same shape and dtype.
    """
    images = _check_images("affine", images)
    _interp("affine", order, mode)
    m = jnp.asarray(matrices)
    if m.shape == (2, 2):
        m = jnp.broadcast_to(m, (images.shape[0], 2, 2))
    if m.shape != (images.shape[0], 2, 2):
        raise ValueError(f"affine: matrices must be [2, 2] or [{images.shape[0]}, 2, 2], got shape {m.shape}")
    return jax.vmap(lambda im, a: _warp_one(im, a, order, mode, cval))(images, m)


def _per_image(images, v):
    return jnp.broadcast_to(jnp.asarray(v, dtype=images.dtype), (images.shape[0],))


def rotate_by(images: Array, angle: float | Array, **kw: Any) -> Array:
    """Rotate counter-clockwise by ``angle`` radians (a scalar or one per image); see :func:`affine`."""
    images = _check_images("rotate_by", images)
    return affine(images, rotation_matrix(_per_image(images, angle)), **kw)


def zoom_by(images: Array, factor: float | Array, **kw: Any) -> Array:
    """Zoom about the centre by ``factor`` (> 1 enlarges), keeping the image size; see :func:`affine`."""
    images = _check_images("zoom_by", images)
    f = _per_image(images, factor)
    return affine(images, stretch_matrix(f, f), **kw)


def stretch_by(images: Array, row_factor: float | Array, col_factor: float | Array, **kw: Any) -> Array:
    """Scale rows by ``row_factor`` and columns by ``col_factor`` about the centre; see :func:`affine`."""
    images = _check_images("stretch_by", images)
    return affine(images, stretch_matrix(_per_image(images, row_factor), _per_image(images, col_factor)), **kw)


def shear_by(images: Array, k: float | Array, **kw: Any) -> Array:
    """Shear: the column shifts by ``k * row``; see :func:`affine`."""
    images = _check_images("shear_by", images)
    return affine(images, shear_matrix(_per_image(images, k)), **kw)


# ---------------------------------------------------------------- random transforms, one key per sample
def _uniform(keys, lo, hi, dtype, shape=()):
    return jax.vmap(lambda k: jax.random.uniform(k, shape, dtype=dtype, minval=lo, maxval=hi))(keys)


def _log_uniform(keys, lo, hi, dtype, shape=()):
    return jnp.exp(_uniform(keys, math.log(lo), math.log(hi), dtype, shape))


def rotate(key: Array, images: Array, angle_range: tuple[float, float] = (0.0, 2 * math.pi), **kw: Any) -> Array:
    """Rotate each image by an angle drawn from ``U[angle_range]`` (radians; the chapter's ``U[0, 2 pi]``)."""
    images = _check_images("rotate", images)
    lo, hi = _range("rotate", "angle_range", angle_range)
    return rotate_by(images, _uniform(_sample_keys(key, images.shape[0]), lo, hi, images.dtype), **kw)


def zoom(key: Array, images: Array, factor_range: tuple[float, float] = (1 / 1.6, 1.6), **kw: Any) -> Array:
    """Zoom each image by a factor drawn log-uniformly from ``factor_range`` (the chapter's ``[1/1.6, 1.6]``).

    Log-uniform, so that enlarging by ``f`` and shrinking by ``1/f`` are equally likely.
    """
    images = _check_images("zoom", images)
    lo, hi = _range("zoom", "factor_range", factor_range, positive=True)
    return zoom_by(images, _log_uniform(_sample_keys(key, images.shape[0]), lo, hi, images.dtype), **kw)


def stretch(key: Array, images: Array, factor_range: tuple[float, float] = (1 / 1.3, 1.3), **kw: Any) -> Array:
    """Scale rows and columns of each image by two independent log-uniform factors from ``factor_range``."""
    images = _check_images("stretch", images)
    lo, hi = _range("stretch", "factor_range", factor_range, positive=True)
    f = _log_uniform(_sample_keys(key, images.shape[0]), lo, hi, images.dtype, (2,))
    return stretch_by(images, f[:, 0], f[:, 1], **kw)


def shear(key: Array, images: Array, shear_range: tuple[float, float] = (-0.3, 0.3), **kw: Any) -> Array:
    """Shear each image by ``k ~ U[shear_range]`` (column shift ``k * row``)."""
    images = _check_images("shear", images)
    lo, hi = _range("shear", "shear_range", shear_range)
    return shear_by(images, _uniform(_sample_keys(key, images.shape[0]), lo, hi, images.dtype), **kw)


def _flip(fn, key, images, p, axis):
    images = _check_images(fn, images)
    p = _probability(fn, p)
    flip = jax.vmap(lambda k: jax.random.bernoulli(k, p))(_sample_keys(key, images.shape[0]))
    flip = flip.reshape((-1,) + (1,) * (images.ndim - 1))
    return jnp.where(flip, jnp.flip(images, axis=axis), images)


def flip_horizontal(key: Array, images: Array, p: float = 0.5) -> Array:
    """Mirror each image left-right with probability ``p`` (exact)."""
    return _flip("flip_horizontal", key, images, p, 2)


def flip_vertical(key: Array, images: Array, p: float = 0.5) -> Array:
    """Mirror each image top-bottom with probability ``p`` (exact)."""
    return _flip("flip_vertical", key, images, p, 1)


def add_noise(key: Array, images: Array, eps: float = 0.1, *, clip: tuple[float, float] | None = None) -> Array:
    """Add independent ``U[-eps, eps]`` noise to every pixel, so the change is at most ``|eps|``.

    Args:
      key: a ``jax.random`` key (split into one per sample).
      images: [N, H, W] or [N, H, W, C].
      eps: the noise bound, ``>= 0``.
      clip: optional ``(lo, hi)`` to clip the result to (e.g. ``(0, 1)`` for pixel intensities).
    """
    images = _check_images("add_noise", images)
    eps = _number("add_noise", "eps", eps)
    if eps < 0:
        raise ValueError(f"add_noise: eps must be >= 0, got {eps!r}")
    noise = jax.vmap(lambda k: jax.random.uniform(k, images.shape[1:], dtype=images.dtype, minval=-eps, maxval=eps))(
        _sample_keys(key, images.shape[0])
    )
    out = images + noise
    if clip is not None:
        lo, hi = _range("add_noise", "clip", clip)
        out = jnp.clip(out, lo, hi)
    return out


# ---------------------------------------------------------------- composition
def pipeline(*transforms: Callable[[Array, Array], Array]) -> Callable[[Array, Array], Array]:
    """Chain transforms ``t(key, images) -> images``; each gets its own key from ``split(key, len)``.

    Parameters are bound beforehand, e.g.
    ``pipeline(functools.partial(rotate, angle_range=(-0.3, 0.3)), flip_horizontal)``.

    Returns:
      ``augment(key, images) -> images``.

    Raises:
      TypeError: when a transform is not callable or none is given.
    """
    if not transforms:
        raise TypeError("pipeline: give at least one transform t(key, images) -> images")
    for i, t in enumerate(transforms):
        if not callable(t):
            raise TypeError(f"pipeline: transform {i} must be callable as t(key, images), got {t!r}")

    def augment(key, images):
        check_key("pipeline", key)
        keys = jax.random.split(key, len(transforms))
        for k, t in zip(keys, transforms, strict=True):
            images = t(k, images)
        return images

    return augment


def _symmetric(fn, name, value, *, multiplicative):
    """A range from a user value: ``a`` gives ``(-a, a)`` (or ``(1/a, a)`` for factors); pairs pass through."""
    if value is None or value is False:
        return None
    if isinstance(value, (tuple, list)):
        return _range(fn, name, value, positive=multiplicative)
    a = _number(fn, name, value)
    if multiplicative:
        if a <= 0:
            raise ValueError(f"{fn}: {name} must be a factor > 0 or a (lo, hi) pair, got {value!r}")
        return (min(a, 1 / a), max(a, 1 / a))
    return (-abs(a), abs(a))


def make_augment(
    rotation: Any = None,
    zoom: Any = None,
    shear: Any = None,
    stretch: Any = None,
    flip: str | None = None,
    noise: float | None = None,
    *,
    flip_p: float = 0.5,
    clip: tuple[float, float] | None = None,
    order: int = 1,
    mode: str = "constant",
    cval: float = 0.0,
) -> Callable[[Array, Array], Array]:
    """Build one random augmentation ``augment(key, images) -> images`` for the compiled train step.

    Per sample: one affine map (stretch, then shear, zoom and rotation) sampled once with
    bilinear interpolation, then the flips, then the noise, then the optional clip.
    Each transform of sample ``i`` draws from ``fold_in(split(key, N)[i], t)`` with a fixed ``t``
    per transform, so switching one transform on or off leaves the others' draws unchanged.

    Args:
      rotation: angle range in radians; ``a`` means ``(-a, a)``; the chapter's ``(0, 2 * pi)``.
      zoom: factor range; ``f`` means ``(1/f, f)``; the chapter's ``1.6``. Drawn log-uniformly.
      shear: shear range; ``s`` means ``(-s, s)``.
      stretch: per-axis factor range; ``f`` means ``(1/f, f)``, drawn independently per axis.
      flip: ``"horizontal"`` (or ``True``), ``"vertical"`` or ``"both"``; each applied with ``flip_p``.
      noise: the bound ``eps`` of per-pixel ``U[-eps, eps]`` noise.
      flip_p: the probability of each flip.
      clip: optional ``(lo, hi)`` for the final values.
      order, mode, cval: interpolation order and boundary handling (see the module docstring).

    Returns:
      ``augment(key, images)``; with every argument off it returns the images unchanged.

    Raises:
      ValueError: for an inverted range, a factor <= 0, a bad flip name, ``noise < 0`` or ``flip_p`` outside [0, 1].
    """
    fn = "make_augment"
    rot = _symmetric(fn, "rotation", rotation, multiplicative=False)
    zm = _symmetric(fn, "zoom", zoom, multiplicative=True)
    sh = _symmetric(fn, "shear", shear, multiplicative=False)
    st = _symmetric(fn, "stretch", stretch, multiplicative=True)
    # (image axis, key id): a flip's draw does not depend on whether the other flip is on.
    flips = {
        None: (),
        False: (),
        True: ((1, 4),),
        "horizontal": ((1, 4),),
        "vertical": ((0, 5),),
        "both": ((1, 4), (0, 5)),
    }
    if not isinstance(flip, (str, bool, type(None))) or flip not in flips:
        raise ValueError(f"{fn}: flip must be None, True, 'horizontal', 'vertical' or 'both', got {flip!r}")
    flip_axes = flips[flip]
    p = _probability(fn, flip_p)
    eps = None if noise is None else _number(fn, "noise", noise)
    if eps is not None and eps < 0:
        raise ValueError(f"{fn}: noise must be a bound eps >= 0, got {noise!r}")
    if clip is not None:
        clip = _range(fn, "clip", clip)
    _interp(fn, order, mode)
    geometric = any(r is not None for r in (rot, zm, sh, st))

    def one(key, image):
        dtype = image.dtype
        k = lambda t: jax.random.fold_in(key, t)  # noqa: E731
        a = jnp.eye(2, dtype=dtype)
        # Inverse of rotate . zoom . shear . stretch, i.e. stretch^-1 shear^-1 zoom^-1 rotate^-1.
        if rot is not None:
            a = rotation_matrix(jax.random.uniform(k(0), (), dtype, rot[0], rot[1])) @ a
        if zm is not None:
            f = jnp.exp(jax.random.uniform(k(1), (), dtype, math.log(zm[0]), math.log(zm[1])))
            a = stretch_matrix(f, f) @ a
        if sh is not None:
            a = shear_matrix(jax.random.uniform(k(2), (), dtype, sh[0], sh[1])) @ a
        if st is not None:
            f = jnp.exp(jax.random.uniform(k(3), (2,), dtype, math.log(st[0]), math.log(st[1])))
            a = stretch_matrix(f[0], f[1]) @ a
        if geometric:
            image = _warp_one(image, a, order, mode, cval)
        for axis, t in flip_axes:
            image = jnp.where(jax.random.bernoulli(k(t), p), jnp.flip(image, axis), image)
        if eps is not None:
            image = image + jax.random.uniform(k(6), image.shape, dtype, -eps, eps)
        if clip is not None:
            image = jnp.clip(image, clip[0], clip[1])
        return image

    def augment(key, images):
        images = _check_images("augment", images)
        return jax.vmap(one)(_sample_keys(key, images.shape[0]), images)

    return augment
