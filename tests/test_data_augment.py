"""§4.4.4 image augmentation: invariants, per-sample randomness, jit/vmap, and bad ranges."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.data as D
from jaxnet.data import augment as A

N, H = 4, 9
KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def images():
    return jax.random.uniform(jax.random.PRNGKey(42), (N, H, H))


def test_identities_to_interpolation_tolerance(images):
    for out in [
        A.rotate_by(images, 0.0),
        A.rotate_by(images, 2 * math.pi),
        A.zoom_by(images, 1.0),
        A.shear_by(images, 0.0),
        A.stretch_by(images, 1.0, 1.0),
        A.flip_horizontal(KEY, images, p=0.0),
        A.flip_vertical(KEY, images, p=0.0),
        A.add_noise(KEY, images, eps=0.0),
    ]:
        np.testing.assert_allclose(out, images, atol=1e-5)
    # Random forms with degenerate ranges are identities as well.
    np.testing.assert_allclose(A.rotate(KEY, images, (2 * math.pi, 2 * math.pi)), images, atol=1e-5)
    np.testing.assert_allclose(A.zoom(KEY, images, (1.0, 1.0)), images, atol=1e-6)
    np.testing.assert_allclose(A.shear(KEY, images, (0.0, 0.0)), images, atol=1e-6)
    np.testing.assert_array_equal(D.make_augment()(KEY, images), images)


def test_quarter_turn_matches_rot90(images):
    x = np.asarray(images)
    np.testing.assert_allclose(A.rotate_by(images, math.pi / 2), np.rot90(x, 1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(A.rotate_by(images, math.pi), np.rot90(x, 2, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(A.rotate_by(images, -math.pi / 2), np.rot90(x, -1, axes=(1, 2)), atol=1e-5)


def test_flips_are_exact_and_twice_is_identity(images):
    x = np.asarray(images)
    np.testing.assert_array_equal(A.flip_horizontal(KEY, images, p=1.0), x[:, :, ::-1])
    np.testing.assert_array_equal(A.flip_vertical(KEY, images, p=1.0), x[:, ::-1, :])
    once = A.flip_horizontal(KEY, images)  # the same key draws the same flips again
    np.testing.assert_array_equal(A.flip_horizontal(KEY, once), x)
    np.testing.assert_array_equal(A.flip_vertical(KEY, A.flip_vertical(KEY, images)), x)
    # p = 0.5: each sample is either untouched or exactly mirrored.
    for i in range(N):
        assert np.array_equal(once[i], x[i]) or np.array_equal(once[i], x[i, :, ::-1])


def test_flip_probability_statistics():
    x = jnp.arange(4.0).reshape(1, 1, 4) * jnp.ones((2000, 1, 1))
    out = A.flip_horizontal(KEY, x, p=0.3)
    rate = float(jnp.mean(out[:, 0, 0] == 3.0))
    assert abs(rate - 0.3) < 5 * math.sqrt(0.3 * 0.7 / 2000)


def test_noise_is_bounded_and_spreads_over_the_range(images):
    eps = 0.05
    out = A.add_noise(KEY, images, eps)
    delta = np.asarray(out - images)
    assert np.abs(delta).max() <= eps * (1 + 1e-5)
    assert np.abs(delta).max() > 0.8 * eps and abs(delta.mean()) < 0.01  # U[-eps, eps], not a constant
    clipped = A.add_noise(KEY, images, 0.5, clip=(0.0, 1.0))
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 1.0


def test_zoom_and_stretch_geometry():
    # A single bright pixel 2 to the right of the centre moves to 4 right when zoomed by 2.
    img = jnp.zeros((1, H, H)).at[0, 4, 6].set(1.0)
    out = np.asarray(A.zoom_by(img, 2.0))
    # The bilinear tent widens by 2 too: half weight one pixel away (column 9 lies outside).
    np.testing.assert_allclose(
        [out[0, 4, 8], out[0, 4, 7], out[0, 3, 8], out[0, 4, 5]], [1.0, 0.5, 0.5, 0.0], atol=1e-6
    )
    # Stretching the rows by 2 leaves a column offset where it is.
    out = np.asarray(A.stretch_by(img, 2.0, 1.0))
    assert out[0, 4, 6] == pytest.approx(1.0)
    # Zooming out pads with the constant 0 at the border.
    ones = jnp.ones((1, H, H))
    small = np.asarray(A.zoom_by(ones, 0.5))
    assert small[0, 0, 0] == 0.0 and small[0, 4, 4] == 1.0


def test_shear_moves_columns_in_proportion_to_rows():
    img = jnp.zeros((1, H, H)).at[0, :, 4].set(1.0)  # a vertical line through the centre
    out = np.asarray(A.shear_by(img, 1.0))
    for r in range(H):
        assert out[0, r, 4 + (r - 4)] == pytest.approx(1.0)  # col shift = k * (row - centre)


def test_channels_share_the_geometry():
    x = jax.random.uniform(jax.random.PRNGKey(1), (N, H, H, 3))
    out = A.rotate(KEY, x)
    assert out.shape == x.shape
    for c in range(3):
        np.testing.assert_allclose(out[..., c], A.rotate(KEY, x[..., c]), atol=1e-6)


@pytest.fixture(scope="module")
def full_augment():
    """Every transform on, with a trace counter; compiled once for the module (compiling is the slow part)."""
    aug = D.make_augment(
        rotation=(0, 2 * math.pi), zoom=1.6, shear=0.3, stretch=1.2, flip="both", noise=0.05, clip=(0.0, 1.0)
    )
    traces = []

    def counted(key, x):
        traces.append(1)
        return aug(key, x)

    return jax.jit(counted), traces


def test_same_key_same_output_other_key_other_output_per_sample_keys(images, full_augment):
    aug, _ = full_augment
    a, b, c = aug(KEY, images), aug(KEY, images), aug(jax.random.PRNGKey(1), images)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    same = jnp.broadcast_to(images[:1], images.shape)  # identical samples get different draws
    out = aug(KEY, same)
    assert not np.allclose(out[0], out[1])
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_pipeline_and_make_augment_run_inside_jit_and_vmap(images, full_augment):
    aug, traces = full_augment
    before = len(traces)
    outs = [aug(jax.random.PRNGKey(i), images) for i in range(3)]
    assert len(traces) - before <= 1  # at most the first call traces; new keys never retrace
    assert not np.allclose(outs[0], outs[1])
    pipe = D.pipeline(
        functools.partial(A.rotate, angle_range=(-0.5, 0.5)),
        A.flip_horizontal,
        functools.partial(A.add_noise, eps=0.01),
    )
    out = jax.jit(pipe)(KEY, images)
    assert out.shape == images.shape
    # vmap over a leading axis, e.g. one key and batch per ensemble member.
    batched = jax.jit(jax.vmap(pipe))(jax.random.split(KEY, 2), jnp.stack([images, images]))
    assert batched.shape == (2, *images.shape)
    np.testing.assert_allclose(batched[0], jax.jit(pipe)(jax.random.split(KEY, 2)[0], images), atol=1e-6)


def test_make_augment_matches_the_single_transforms_it_fuses(images):
    """A switched-on transform draws from fold_in(sample key, t); flips reproduce exactly by hand."""
    aug = D.make_augment(flip="vertical", flip_p=0.5)
    keys = jax.random.split(KEY, N)
    expect = [
        np.asarray(images[i])[::-1]
        if bool(jax.random.bernoulli(jax.random.fold_in(keys[i], 5), 0.5))
        else np.asarray(images[i])
        for i in range(N)
    ]
    np.testing.assert_array_equal(aug(KEY, images), np.stack(expect))
    rot = D.make_augment(rotation=(math.pi / 2, math.pi / 2))
    np.testing.assert_allclose(rot(KEY, images), np.rot90(np.asarray(images), axes=(1, 2)), atol=1e-5)


def test_bad_ranges_and_inputs_raise(images):
    with pytest.raises(ValueError, match=r"zoom: factor_range must hold factors > 0"):
        A.zoom(KEY, images, (0.0, 2.0))
    with pytest.raises(ValueError, match=r"rotate: angle_range is inverted"):
        A.rotate(KEY, images, (1.0, 0.0))
    with pytest.raises(ValueError, match="add_noise: eps must be >= 0"):
        A.add_noise(KEY, images, -0.1)
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        A.flip_horizontal(KEY, images, p=1.5)
    with pytest.raises(ValueError, match="make_augment: zoom must be a factor > 0"):
        D.make_augment(zoom=-1.6)
    with pytest.raises(ValueError, match="make_augment: stretch is inverted"):
        D.make_augment(stretch=(1.2, 0.8))
    with pytest.raises(ValueError, match="flip must be None, True"):
        D.make_augment(flip="diagonal")
    with pytest.raises(ValueError, match=r"expected an image batch \[N, H, W\].*\[N, 8, 8\]"):
        D.make_augment(noise=0.1)(KEY, jnp.ones((5, 64)))
    with pytest.raises(TypeError, match="floating dtype"):
        A.rotate(KEY, jnp.ones((2, 4, 4), jnp.int32))
    with pytest.raises(TypeError, match="transform 1 must be callable"):
        D.pipeline(A.rotate, 3)
