"""Optimizers: pure ``init``/``update`` transforms, schedules, regularizers and clipping.

Each optimizer follows ``torch.optim``'s update rule and defaults; hyperparameters live as
arrays in the optimizer state, an optimizer's several in one :class:`Hyperparameters` array
(see :mod:`jaxnet.optim.hyperparams`).
"""
from jaxnet.optim.adaptive import AdagradState, AdamState, RmspropState, adagrad, adam, adamw, rmsprop
from jaxnet.optim.base import ChainState, apply_updates, chain
from jaxnet.optim.clipping import (ClipByGlobalNormState, ClipByValueState, clip_by_global_norm, clip_by_value,
                                   global_norm)
from jaxnet.optim.hyperparams import Hyperparameters, Schedule, hyperparameters, set_hyperparameter
from jaxnet.optim.masks import path_mask, resolve_mask, weights_only
from jaxnet.optim.regularizers import (AddDecayedWeightsState, abs_sign0, add_decayed_weights, l1_penalty,
                                       l2_penalty)
from jaxnet.optim.schedules import (constant_schedule, cosine_decay, exponential_decay, inverse_time_decay, join,
                                    linear_schedule, linear_warmup, step_decay, warmup_cosine_decay)
from jaxnet.optim.sgd import SgdState, sgd
from jaxnet.optim.switch import SwitchState, switch, trigger_switch
from jaxnet.types import Optimizer

__all__ = [
    "Optimizer", "apply_updates", "chain", "ChainState",
    "sgd", "SgdState", "adagrad", "AdagradState", "rmsprop", "RmspropState", "adam", "adamw", "AdamState",
    "switch", "SwitchState", "trigger_switch",
    "set_hyperparameter", "hyperparameters", "Hyperparameters", "Schedule",
    "constant_schedule", "step_decay", "exponential_decay", "inverse_time_decay", "cosine_decay",
    "linear_schedule", "linear_warmup", "warmup_cosine_decay", "join",
    "l2_penalty", "l1_penalty", "abs_sign0", "add_decayed_weights", "AddDecayedWeightsState",
    "path_mask", "weights_only", "resolve_mask",
    "clip_by_global_norm", "clip_by_value", "global_norm", "ClipByGlobalNormState", "ClipByValueState",
]
