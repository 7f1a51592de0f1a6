"""summary and tree_summary: parameter counts and bytes against hand-computed numbers, shapes, printing."""

import jax
import jax.numpy as jnp
import pytest

import jaxnet
from jaxnet import nn


def test_mlp_counts_match_hand_computation():
    printed = []
    s = jaxnet.summary(nn.MLP([64, 10]), (-1, 784), print_fn=printed.append)
    assert [r.path for r in s.rows] == ["dense_0", "relu_1", "dense_2"]
    assert [r.params for r in s.rows] == [784 * 64 + 64, 0, 64 * 10 + 10]
    assert [r.kind for r in s.rows] == ["dense", "activation", "dense"]
    assert [r.output_shape for r in s.rows] == [(-1, 64), (-1, 64), (-1, 10)]
    assert s.total_params == 784 * 64 + 64 + 64 * 10 + 10 == 50_890
    assert s.total_bytes == 4 * 50_890 and s.total_state == 0
    assert s.output_shape == (-1, 10)
    assert len(printed) == 1 and printed[0] == str(s)
    assert "50,890 params" in printed[0] and "(batch, 64)" in printed[0] and "Dense(64)" in printed[0]


def test_state_and_float64_bytes(x64):
    model = nn.MLP([8, 3], batchnorm=True, dtype=jnp.float64)
    s = jaxnet.summary(model, (-1, 5), print_fn=None)
    bn = s.rows[1]
    assert bn.kind == "batchnorm" and bn.params == 2 * 8 and bn.state == 2 * 8
    assert s.total_params == (5 * 8 + 8) + 16 + (8 * 3 + 3)
    assert s.total_bytes == 8 * s.total_params and s.total_state == 16


def test_nested_combinators_list_their_layers_and_count_once():
    block = nn.serial(nn.Dense(6), nn.Gelu(), nn.Dense(6))
    model = nn.serial(
        nn.Embedding(50, 6),
        nn.LayerNorm(),
        nn.residual(block),
        nn.FanOut(2),
        nn.parallel(nn.Dense(4, name="proj"), nn.RMSNorm()),
        nn.FanInConcat(),
    )
    s = jaxnet.summary(model, (-1, 7), print_fn=None)
    paths = [r.path for r in s.rows]
    assert paths == [
        "embedding_0",
        "layernorm_1",
        "residual_2",
        "residual_2/serial_0",
        "residual_2/serial_0/dense_0",
        "residual_2/serial_0/gelu_1",
        "residual_2/serial_0/dense_2",
        "fanout_3",
        "parallel_4",
        "parallel_4/proj",
        "parallel_4/rmsnorm_1",
        "faninconcat_5",
    ]
    by_path = {r.path: r for r in s.rows}
    assert by_path["residual_2"].params == by_path["residual_2/serial_0"].params == 2 * (6 * 6 + 6)
    assert by_path["fanout_3"].output_shape == ((-1, 7, 6), (-1, 7, 6))
    assert by_path["parallel_4"].params == (6 * 4 + 4) + 6
    want = 50 * 6 + 2 * 6 + 2 * (6 * 6 + 6) + (6 * 4 + 4) + 6
    assert s.total_params == want
    _, params, _ = model.init(jax.random.PRNGKey(0), (-1, 7))
    assert sum(p.size for p in jax.tree_util.tree_leaves(params)) == want
    assert s.output_shape == (-1, 7, 10)
    assert "  serial_0" in str(s)  # nested rows are indented


def test_no_parameter_is_allocated():
    # 4e10 float32 values (160 GB): only shapes are computed.
    s = jaxnet.summary(nn.serial(nn.Dense(200_000), nn.Dense(200_000)), (-1, 100), print_fn=None)
    assert s.total_params == 100 * 200_000 + 200_000 + 200_000**2 + 200_000
    assert "GiB" in str(s)


def test_a_single_layer_is_one_row():
    s = jaxnet.summary(nn.Dense(3, name="head"), (-1, 2), print_fn=None)
    assert [(r.path, r.params) for r in s.rows] == [("head", 9)]


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"summary: model must be a Layer, got function"):
        jaxnet.summary(nn.Relu, (-1, 3))
    with pytest.raises(TypeError, match=r"summary\.init: input_shape must be a tuple including the batch axis"):
        jaxnet.summary(nn.Relu(), 3)
    with pytest.raises(ValueError, match=r"^serial\(3 layers\), layer 2 \(Reshape\(\(3,\)\)\): .*cannot reshape"):
        jaxnet.summary(nn.serial(nn.Flatten(), nn.Dense(2), nn.Reshape((3,))), (-1, 4), print_fn=None)


def _cols(line):
    return [c.strip() for c in line.split("  ") if c.strip()]


def test_tree_summary_shows_shapes_and_dtypes_not_values():
    _, params, _ = nn.MLP([4, 2]).init(jax.random.PRNGKey(0), (-1, 3))
    printed = []
    text = jaxnet.tree_summary(params, print_fn=printed.append)
    assert printed == [text]
    lines = text.splitlines()
    assert _cols(lines[0]) == ["dense_0/b", "float32[4]", "4"]
    assert _cols(lines[1]) == ["dense_0/w", "float32[3, 4]", "12"]
    assert lines[-1] == "Total: 26 values in 4 arrays (104 B)"
    assert str(float(params["dense_0"]["w"][0, 0]))[:6] not in text


def test_tree_summary_of_shape_structs_and_empty_trees():
    tree = {"a": jax.ShapeDtypeStruct((2, 3), jnp.int8)}
    assert _cols(jaxnet.tree_summary(tree, print_fn=None).splitlines()[0]) == ["a", "int8[2, 3]", "6"]
    assert jaxnet.tree_summary({}, print_fn=None) == "Total: 0 values in 0 arrays (0 B)"
