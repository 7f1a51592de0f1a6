"""save_safetensors / load_safetensors: dotted names, bit-exact round trips per dtype, template checks, errors."""

import os
import sys

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings

import jaxnet
from jaxnet.train import load_safetensors, read_safetensors, save_safetensors

# dtype -> the unsigned integer type of the same width, to compare bit patterns (NaN payloads, -0.0 included).
_BITS = {
    "float16": np.uint16,
    "bfloat16": np.uint16,
    "float32": np.uint32,
    "float64": np.uint64,
}
_DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float64": np.float64}


def _bits(a) -> np.ndarray:
    a = np.asarray(a)
    return a.view(_BITS[a.dtype.name])


def _random_bits(rng, dtype_name: str, shape) -> np.ndarray:
    """Every bit pattern is possible: normal numbers, subnormals, infinities, NaNs with payloads, -0.0."""
    u = _BITS[dtype_name]
    raw = rng.integers(0, np.iinfo(u).max, size=shape, dtype=u, endpoint=True)
    return raw.view(_DTYPES[dtype_name])


def _tree(rng, dtype_name: str) -> dict:
    return {
        "dense_0": {"w": _random_bits(rng, dtype_name, (4, 3)), "b": _random_bits(rng, dtype_name, (3,))},
        "prelu_1": {"alpha": _random_bits(rng, dtype_name, ())},
        "dense_2": {"w": _random_bits(rng, dtype_name, (3, 2))},
    }


def _assert_same_bits(got, want) -> None:
    got_leaves, got_def = jax.tree_util.tree_flatten(got)
    want_leaves, want_def = jax.tree_util.tree_flatten(want)
    assert got_def == want_def
    for g, w in zip(got_leaves, want_leaves, strict=True):
        assert isinstance(g, jax.Array)
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(_bits(g), _bits(w))


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16", "float16"])
def test_round_trip_is_bit_exact(tmp_path, dtype_name):
    tree = _tree(np.random.default_rng(0), dtype_name)
    path = save_safetensors(tmp_path / "w.safetensors", tree)
    _assert_same_bits(load_safetensors(path), tree)
    _assert_same_bits(load_safetensors(path, like=tree), tree)


def test_round_trip_float64_is_bit_exact(tmp_path, x64):
    tree = _tree(np.random.default_rng(1), "float64")
    path = save_safetensors(tmp_path / "w.safetensors", tree)
    _assert_same_bits(load_safetensors(path, like=tree), tree)
    _assert_same_bits(load_safetensors(path), tree)


@settings(max_examples=25, deadline=None)
@given(
    dtype_name=st.sampled_from(["float32", "bfloat16", "float16"]),
    seed=st.integers(0, 2**32 - 1),
    shape=st.lists(st.integers(0, 4), max_size=3).map(tuple),
)
def test_round_trip_property(tmp_path_factory, dtype_name, seed, shape):
    tree = {"layer_0": {"w": _random_bits(np.random.default_rng(seed), dtype_name, shape)}}
    path = save_safetensors(tmp_path_factory.mktemp("prop") / "w.safetensors", tree)
    _assert_same_bits(load_safetensors(path, like=tree), tree)


def test_model_params_use_flat_dotted_names_and_keep_structure(tmp_path):
    model = jaxnet.MLP([8, 3], batchnorm=True)
    _, params, state = model.init(jax.random.key(0), (-1, 5))
    params = jax.tree_util.tree_map(lambda a: a + 0.5, params)
    path = save_safetensors(tmp_path / "model.safetensors", params, metadata={"note": "test"})
    arrays, meta = read_safetensors(path)
    assert sorted(arrays) == [
        "batchnorm_1.beta",
        "batchnorm_1.gamma",
        "dense_0.b",
        "dense_0.w",
        "dense_3.b",
        "dense_3.w",
    ]
    assert meta["note"] == "test" and meta["jaxnet_version"] == jaxnet.__version__
    np.testing.assert_array_equal(arrays["dense_0.w"], np.asarray(params["dense_0"]["w"]))
    # Without a template the layers without params ("relu_2" here has none) are not in the file;
    # with one, the result has the model's exact structure and runs.
    assert "relu_2" not in load_safetensors(path)
    loaded = load_safetensors(path, like=params)
    assert jax.tree_util.tree_structure(loaded) == jax.tree_util.tree_structure(params)
    x = jnp.ones((2, 5))
    want, _ = model.apply(params, state, x, train=False)
    got, _ = model.apply(loaded, state, x, train=False)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    # State (BatchNorm's running statistics) saves the same way.
    path = save_safetensors(tmp_path / "state.safetensors", state)
    _assert_same_bits(load_safetensors(path, like=state), state)


def test_integer_and_bool_leaves_round_trip(tmp_path):
    tree = {"a": {"i": np.arange(6, dtype=np.int32).reshape(2, 3), "m": np.array([True, False]), "u": np.uint8(7)}}
    path = save_safetensors(tmp_path / "x.safetensors", tree)
    got = load_safetensors(path, like=tree)
    for k in tree["a"]:
        assert got["a"][k].dtype == np.asarray(tree["a"][k]).dtype
        np.testing.assert_array_equal(np.asarray(got["a"][k]), tree["a"][k])


def test_overwrite_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "w.safetensors"
    save_safetensors(path, {"l": {"w": np.zeros(3, np.float32)}})
    save_safetensors(path, {"l": {"w": np.ones(3, np.float32)}})
    assert os.listdir(tmp_path) == ["w.safetensors"]
    np.testing.assert_array_equal(np.asarray(load_safetensors(path)["l"]["w"]), np.ones(3))


# --- errors ---------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_safetensors|read_safetensors: no file at .*nope"):
        load_safetensors(tmp_path / "nope.safetensors")


@pytest.mark.parametrize(
    "content",
    [b"", b"not a safetensors file at all", (10**9).to_bytes(8, "little") + b"{}", b"\x08" + b"\0" * 7 + b"[1,2]   "],
)
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"is not a valid safetensors file"):
        load_safetensors(path)


def test_an_npz_file_is_not_a_safetensors_file(tmp_path):
    path = jaxnet.save_checkpoint(tmp_path / "ckpt", params={"l": {"w": np.zeros(2, np.float32)}})
    with pytest.raises(ValueError, match=r"ckpt.npz' is not a valid safetensors file"):
        load_safetensors(path)


def _template():
    return {"dense_0": {"w": np.zeros((4, 3), np.float32), "b": np.zeros(3, np.float32)}}


def test_like_names_a_missing_entry(tmp_path):
    path = save_safetensors(tmp_path / "w.safetensors", {"dense_0": {"w": np.zeros((4, 3), np.float32)}})
    with pytest.raises(ValueError, match=r"'dense_0\.b' is missing from the file \(expected float32\[3\]\)"):
        load_safetensors(path, like=_template())


def test_like_names_an_unexpected_entry(tmp_path):
    tree = _template()
    tree["dense_1"] = {"w": np.zeros(2, np.float32)}
    path = save_safetensors(tmp_path / "w.safetensors", tree)
    with pytest.raises(ValueError, match=r"the file has 'dense_1\.w' \(float32\[2\]\), which the template lacks"):
        load_safetensors(path, like=_template())


def test_like_names_shape_and_dtype_differences_all_at_once(tmp_path):
    tree = {"dense_0": {"w": np.zeros((3, 4), np.float32), "b": np.zeros(3, np.float16)}}
    path = save_safetensors(tmp_path / "w.safetensors", tree)
    with pytest.raises(ValueError) as err:
        load_safetensors(path, like=_template())
    msg = str(err.value)
    assert "'dense_0.w' is float32[3, 4] in the file, float32[4, 3] in the template" in msg
    assert "'dense_0.b' is float16[3] in the file, float32[3] in the template" in msg


def test_float64_without_x64_is_refused_not_narrowed(tmp_path, x64):
    path = save_safetensors(tmp_path / "w.safetensors", {"l": {"w": np.zeros(2, np.float64)}})
    jax.config.update("jax_enable_x64", False)  # the fixture restores the setting
    with pytest.raises(ValueError, match=r"64-bit arrays \(l\.w\).*jax_enable_x64"):
        load_safetensors(path)
    arrays, _ = read_safetensors(path)  # NumPy keeps them exact
    assert arrays["l.w"].dtype == np.float64


def test_save_rejects_undottable_names_and_unsupported_dtypes(tmp_path):
    with pytest.raises(ValueError, match=r"key 'a\.b' .* cannot be part of a dotted name"):
        save_safetensors(tmp_path / "w.safetensors", {"a.b": {"w": np.zeros(2, np.float32)}})
    with pytest.raises(ValueError, match=r"got a single array"):
        save_safetensors(tmp_path / "w.safetensors", np.zeros(2, np.float32))
    with pytest.raises(TypeError, match=r"'l\.w' has dtype complex64"):
        save_safetensors(tmp_path / "w.safetensors", {"l": {"w": np.zeros(2, np.complex64)}})
    with pytest.raises(TypeError, match=r"metadata must map str to str"):
        save_safetensors(tmp_path / "w.safetensors", {"l": {"w": np.zeros(2, np.float32)}}, metadata={"n": 1})
    assert os.listdir(tmp_path) == []


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"pip install 'jaxnet\[safetensors\]'"):
        save_safetensors(tmp_path / "w.safetensors", {"l": {"w": np.zeros(2, np.float32)}})
    with pytest.raises(ImportError, match=r"jaxnet\[safetensors\]"):
        load_safetensors(tmp_path / "w.safetensors")
