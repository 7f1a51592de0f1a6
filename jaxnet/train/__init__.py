"""Training: compiled steps and epochs, ``fit``, early stopping, ensembles, data parallelism, checkpoints."""

from jaxnet.train.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from jaxnet.train.ensemble import (
    EnsembleResult,
    average_probabilities,
    ensemble_report,
    fit_ensemble,
    member_probabilities,
    member_weights,
    set_member_hyperparameter,
    stack,
    unstack,
)
from jaxnet.train.epoch import make_train_epoch
from jaxnet.train.fit import FitResult, NonFiniteWarning, evaluate, fit
from jaxnet.train.history import EarlyStopping, History
from jaxnet.train.parallel import (
    ParallelStep,
    batch_sharding,
    data_mesh,
    make_parallel_train_step,
    replicate,
    replicated,
    shard_batch,
)
from jaxnet.train.plateau import PlateauState, ReduceOnPlateau
from jaxnet.train.precision import Policy, mixed_precision
from jaxnet.train.safetensors_io import load_safetensors, read_safetensors, save_safetensors
from jaxnet.train.step import eval_step_fn, make_eval_step, make_train_step, train_step_fn
from jaxnet.train.torch_names import from_torch_names

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "EarlyStopping",
    "EnsembleResult",
    "FitResult",
    "History",
    "NonFiniteWarning",
    "ParallelStep",
    "PlateauState",
    "Policy",
    "ReduceOnPlateau",
    "average_probabilities",
    "batch_sharding",
    "data_mesh",
    "ensemble_report",
    "eval_step_fn",
    "evaluate",
    "fit",
    "fit_ensemble",
    "from_torch_names",
    "load_checkpoint",
    "load_safetensors",
    "make_eval_step",
    "make_parallel_train_step",
    "make_train_epoch",
    "make_train_step",
    "member_probabilities",
    "member_weights",
    "mixed_precision",
    "read_checkpoint",
    "read_safetensors",
    "replicate",
    "replicated",
    "save_checkpoint",
    "save_safetensors",
    "set_member_hyperparameter",
    "shard_batch",
    "stack",
    "train_step_fn",
    "unstack",
]
