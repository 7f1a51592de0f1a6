"""from_torch_names: PyTorch nn.Sequential MLPs saved by safetensors.torch load into jaxnet MLPs.

The files in tests/data were written by tests/data/make_torch_mlp.py (torch 2.13.0); these tests need
no torch: they compare against the outputs PyTorch computed and stored next to the weights.
"""

import os

import jax
import numpy as np
import pytest

import jaxnet
from jaxnet.train import from_torch_names, read_safetensors

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture(scope="module")
def outputs():
    with np.load(os.path.join(DATA, "torch_mlp_outputs.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _init(model, n_in=8):
    _, params, state = model.init(jax.random.key(0), (-1, n_in))
    return params, state


def test_plain_mlp_matches_pytorch_outputs(outputs):
    model = jaxnet.MLP([16, 16, 3])
    params, state = _init(model)
    params, state = from_torch_names(os.path.join(DATA, "torch_mlp.safetensors"), params, state)
    y, _ = model.apply(params, state, outputs["x"], train=False)
    np.testing.assert_allclose(np.asarray(y), outputs["y_plain"], rtol=1e-5, atol=1e-6)


def test_batchnorm_prelu_mlp_matches_pytorch_outputs(outputs):
    model = jaxnet.MLP([16, 3], activation="prelu", batchnorm=True)
    params, state = _init(model)
    tensors, meta = read_safetensors(os.path.join(DATA, "torch_mlp_bn.safetensors"))
    assert meta == {"format": "pt"}
    params, state = from_torch_names(tensors, params, state)
    # The running statistics come from PyTorch's training passes, not jaxnet's init (0 and 1).
    np.testing.assert_array_equal(np.asarray(state["batchnorm_1"]["var"]), tensors["1.running_var"])
    assert float(params["prelu_2"]["alpha"]) == pytest.approx(0.1)
    y, _ = model.apply(params, state, outputs["x"], train=False)
    np.testing.assert_allclose(np.asarray(y), outputs["y_bn"], rtol=1e-5, atol=1e-6)


def test_linear_weights_are_transposed():
    tensors, _ = read_safetensors(os.path.join(DATA, "torch_mlp.safetensors"))
    params, state = from_torch_names(tensors, *_init(jaxnet.MLP([16, 16, 3])))
    assert tensors["0.weight"].shape == (16, 8) and params["dense_0"]["w"].shape == (8, 16)
    np.testing.assert_array_equal(np.asarray(params["dense_0"]["w"]), tensors["0.weight"].T)
    np.testing.assert_array_equal(np.asarray(params["dense_4"]["b"]), tensors["4.bias"])
    assert state == {"dense_0": {}, "relu_1": {}, "dense_2": {}, "relu_3": {}, "dense_4": {}}


def test_wrong_architecture_names_every_difference():
    tensors, _ = read_safetensors(os.path.join(DATA, "torch_mlp.safetensors"))
    with pytest.raises(ValueError) as err:
        from_torch_names(tensors, *_init(jaxnet.MLP([16, 4])))
    msg = str(err.value)
    assert "'2.weight' gives float32[16, 16] for params dense_2.w, which is float32[16, 4] in jaxnet" in msg
    assert "the state_dict has ['4.bias', '4.weight'] with no place in the jaxnet model" in msg


def test_missing_tensor_and_dtype_mismatch():
    tensors, _ = read_safetensors(os.path.join(DATA, "torch_mlp.safetensors"))
    del tensors["0.bias"]
    tensors["2.bias"] = tensors["2.bias"].astype(np.float16)
    with pytest.raises(ValueError) as err:
        from_torch_names(tensors, *_init(jaxnet.MLP([16, 16, 3])))
    msg = str(err.value)
    assert "'0.bias' (for params dense_0.b) is missing from the state_dict" in msg
    assert "'2.bias' gives float16[16] for params dense_2.b, which is float32[16] in jaxnet" in msg


def test_layers_without_a_rule_or_position_are_named():
    params = {"hidden": {"w": np.zeros((8, 3), np.float32)}, "elu_1": {"alpha": np.float32(1.0)}}
    with pytest.raises(ValueError) as err:
        from_torch_names({}, params, {})
    msg = str(err.value)
    assert "layer 'hidden' is not named <kind>_<position>" in msg
    assert "layer 'elu_1' has kind 'elu'; rules exist for ['batchnorm', 'dense', 'prelu']" in msg
    with pytest.raises(TypeError, match=r"state must be a dict of layers from init, got NoneType"):
        from_torch_names({}, params, None)
