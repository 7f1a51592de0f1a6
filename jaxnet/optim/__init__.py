"""Optimizers: pure ``init``/``update`` transforms, schedules and regularizers."""
from jaxnet.optim.base import apply_updates, chain
from jaxnet.optim.sgd import sgd
from jaxnet.types import Optimizer

__all__ = ["Optimizer", "apply_updates", "chain", "sgd"]
