"""PyTorch ``nn.Sequential`` state_dict names -> jaxnet params and state.

A PyTorch ``nn.Sequential`` names its tensors ``<position>.<attribute>``; jaxnet's ``serial`` (and so
``MLP``) names each layer ``<kind>_<position>``. When both list the same layers in the same order,
the positions agree, and each kind needs one rule for its attributes:

=============================  ==========================  ===============================================
PyTorch module at position i   PyTorch tensor              jaxnet leaf
=============================  ==========================  ===============================================
``nn.Linear``                  ``i.weight`` ``[out, in]``  ``params["dense_i"]["w"]`` ``[in, out]`` (transposed)
``nn.Linear``                  ``i.bias`` ``[out]``        ``params["dense_i"]["b"]``
``nn.BatchNorm1d``             ``i.weight``, ``i.bias``    ``params["batchnorm_i"]["gamma"]``, ``["beta"]``
``nn.BatchNorm1d``             ``i.running_mean``,         ``state["batchnorm_i"]["mean"]``, ``["var"]``
                               ``i.running_var``           (``i.num_batches_tracked`` is not needed)
``nn.PReLU()`` (one slope)     ``i.weight`` ``[1]``        ``params["prelu_i"]["alpha"]`` ``[]``
=============================  ==========================  ===============================================

Activations and dropout have no tensors, so ``nn.Sequential(Linear, ReLU, Linear)`` loads into
``MLP([hidden, out])`` (``dense_0``, ``relu_1``, ``dense_2``), and
``nn.Sequential(Linear, BatchNorm1d, ReLU, Dropout, Linear)`` into ``MLP([hidden, out],
batchnorm=True, dropout=p)``. Both use the same formulas in evaluation mode (jaxnet's BatchNorm
keeps PyTorch's momentum convention and unbiased running variance).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxnet.train.safetensors_io import read_safetensors


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _transpose(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T)


def _scalar(a: np.ndarray) -> np.ndarray:
    return a.reshape(()) if a.size == 1 else a


# kind -> group ("params"/"state") -> jaxnet leaf -> (torch attribute, how to convert the torch array)
_Rule = dict[str, dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]]
RULES: dict[str, _Rule] = {
    "dense": {"params": {"w": ("weight", _transpose), "b": ("bias", _same)}},
    "batchnorm": {
        "params": {"gamma": ("weight", _same), "beta": ("bias", _same)},
        "state": {"mean": ("running_mean", _same), "var": ("running_var", _same)},
    },
    "prelu": {"params": {"alpha": ("weight", _scalar)}},
}
# Torch buffers that carry nothing jaxnet's layers use.
_UNUSED_SUFFIXES = (".num_batches_tracked",)


def _kind_and_position(layer: str) -> tuple[str, str] | None:
    kind, sep, pos = layer.rpartition("_")
    return (kind, pos) if sep and kind and pos.isdigit() else None


def _describe(a) -> str:
    return f"{np.dtype(a.dtype).name}{list(np.shape(a))}"


def from_torch_names(
    tensors: Mapping[str, Any] | str | os.PathLike, params: Mapping[str, Any], state: Mapping[str, Any]
) -> tuple[dict, dict]:
    """Fill a jaxnet ``serial``/``MLP``'s params and state from a PyTorch ``nn.Sequential`` state_dict.

    See the module docstring for the name and layout mapping (``0.weight`` -> ``dense_0.w``
    transposed, ``2.bias`` -> ``dense_2.b``, BatchNorm1d and PReLU too).

    Args:
      tensors: the state_dict as ``{name: array}`` (e.g. what ``safetensors.torch.save_file``
        wrote, read back with :func:`~jaxnet.train.read_safetensors`), or the path of such a file.
      params: the jaxnet model's params from ``init`` (the template: values ignored; keys
        ``<kind>_<position>``, shapes and dtypes must match the torch tensors after conversion).
      state: the model's state from ``init`` (BatchNorm running statistics are filled in).

    Returns:
      ``(params, state)``: the templates' structures with jax arrays from ``tensors``.

    Raises:
      ValueError: naming every problem at once: a layer of a kind without a rule or not named
        ``<kind>_<position>``, a torch tensor missing, one jaxnet has no place for, or a shape
        or dtype that differs.
      TypeError: when ``params`` or ``state`` is not a dict of layers.
    """
    if isinstance(tensors, str | os.PathLike):
        tensors, _ = read_safetensors(tensors)
    torch = {name: np.asarray(a) for name, a in tensors.items()}
    for what, tree in (("params", params), ("state", state)):
        if not isinstance(tree, Mapping):
            raise TypeError(f"from_torch_names: {what} must be a dict of layers from init, got {type(tree).__name__}")
    problems: list[str] = []
    used: set[str] = set()
    templates = {"params": params, "state": state}
    out: dict[str, dict] = {"params": {}, "state": {}}
    for layer in list(params) + [k for k in state if k not in params]:
        groups = {g: t[layer] for g, t in templates.items() if layer in t}
        if not any(groups.values()):
            for g, leaves in groups.items():
                out[g][layer] = leaves
            continue
        parsed = _kind_and_position(layer)
        rule = RULES.get(parsed[0]) if parsed else None
        if parsed is None or rule is None:
            why = "is not named <kind>_<position>" if parsed is None else f"has kind {parsed[0]!r}"
            problems.append(f"layer {layer!r} {why}; rules exist for {sorted(RULES)}")
            continue
        pos = parsed[1]
        for group, leaves in groups.items():
            converted = {}
            for leaf, like in leaves.items():
                if leaf not in rule.get(group, {}):
                    problems.append(f"{group} {layer}.{leaf} has no PyTorch counterpart in the {parsed[0]!r} rule")
                    continue
                attr, convert = rule[group][leaf]
                name = f"{pos}.{attr}"
                if name not in torch:
                    problems.append(f"{name!r} (for {group} {layer}.{leaf}) is missing from the state_dict")
                    continue
                used.add(name)
                value = convert(torch[name])
                if value.shape != tuple(np.shape(like)) or value.dtype != np.dtype(like.dtype):
                    problems.append(
                        f"{name!r} gives {_describe(value)} for {group} {layer}.{leaf}, "
                        f"which is {_describe(like)} in jaxnet"
                    )
                    continue
                converted[leaf] = jnp.asarray(value)
            out[group][layer] = converted
    extra = sorted(n for n in set(torch) - used if not n.endswith(_UNUSED_SUFFIXES))
    if extra:
        problems.append(f"the state_dict has {extra} with no place in the jaxnet model (is the layer order the same?)")
    if problems:
        raise ValueError("from_torch_names: " + "; ".join(problems))
    return out["params"], out["state"]
