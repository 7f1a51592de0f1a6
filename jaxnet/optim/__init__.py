"""Optimizers: pure ``init``/``update`` transforms, schedules, regularizers and clipping.

Each optimizer follows ``torch.optim``'s update rule and defaults; hyperparameters live as
arrays in the optimizer state, an optimizer's several in one :class:`Hyperparameters` array
(see :mod:`jaxnet.optim.hyperparams`).
"""

from jaxnet.optim.accumulate import AccumulateState, accumulate
from jaxnet.optim.adaptive import AdagradState, AdamState, RmspropState, adagrad, adam, adamw, rmsprop
from jaxnet.optim.base import ChainState, apply_updates, chain
from jaxnet.optim.clipping import (
    ClipByGlobalNormState,
    ClipByValueState,
    clip_by_global_norm,
    clip_by_value,
    global_norm,
)
from jaxnet.optim.freeze import EmptyState, MultiTransformState, freeze, multi_transform, set_to_zero
from jaxnet.optim.hyperparams import Hyperparameters, Schedule, hyperparameters, set_hyperparameter
from jaxnet.optim.interop import as_optimizer, is_optimizer
from jaxnet.optim.masks import path_mask, resolve_mask, weights_only
from jaxnet.optim.regularizers import AddDecayedWeightsState, abs_sign0, add_decayed_weights, l1_penalty, l2_penalty
from jaxnet.optim.schedules import (
    constant_schedule,
    cosine_decay,
    exponential_decay,
    inverse_time_decay,
    join,
    linear_schedule,
    linear_warmup,
    step_decay,
    warmup_cosine_decay,
)
from jaxnet.optim.sgd import SgdState, sgd
from jaxnet.optim.switch import SwitchState, switch, trigger_switch
from jaxnet.types import Optimizer

__all__ = [
    "AccumulateState",
    "AdagradState",
    "AdamState",
    "AddDecayedWeightsState",
    "ChainState",
    "ClipByGlobalNormState",
    "ClipByValueState",
    "EmptyState",
    "Hyperparameters",
    "MultiTransformState",
    "Optimizer",
    "RmspropState",
    "Schedule",
    "SgdState",
    "SwitchState",
    "abs_sign0",
    "accumulate",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "as_optimizer",
    "chain",
    "clip_by_global_norm",
    "clip_by_value",
    "constant_schedule",
    "cosine_decay",
    "exponential_decay",
    "freeze",
    "global_norm",
    "hyperparameters",
    "inverse_time_decay",
    "is_optimizer",
    "join",
    "l1_penalty",
    "l2_penalty",
    "linear_schedule",
    "linear_warmup",
    "multi_transform",
    "path_mask",
    "resolve_mask",
    "rmsprop",
    "set_hyperparameter",
    "set_to_zero",
    "sgd",
    "step_decay",
    "switch",
    "trigger_switch",
    "warmup_cosine_decay",
    "weights_only",
]
