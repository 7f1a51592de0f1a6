"""Training: compiled steps (and, as the engine grows, epochs, fit, ensembles, checkpoints)."""
from jaxnet.train.step import make_eval_step, make_train_step, train_step_fn

__all__ = ["make_eval_step", "make_train_step", "train_step_fn"]
