"""The chapter's figures and claims, reproduced: one experiment per idea, each ``run(quick, out) -> result``.

Every module here exposes ``run(quick=True, out=None) -> dict`` that writes its PNG figures under
``out`` (matplotlib, Agg backend) and returns its numbers and the chapter's claims it checked
(each ``{"claim", "held", "measured"}``). ``examples/NAME.py`` runs one from the command line;
``jaxnet tour`` runs them all and writes one HTML page; ``tests/test_chapter_claims.py`` checks
the claims. Importing this package imports none of the experiments (nor matplotlib).
"""

# name -> (chapter section, title), in chapter order
EXPERIMENTS = {
    "representation": ("4.1.1", "Representation learning on the circle data"),
    "activations": ("4.1.2", "Activation functions and their derivatives"),
    "xor": ("4.1.3", "XOR needs a hidden layer"),
    "computational_graph": ("4.2", "Computational graphs"),
    "initialization": ("4.3.2", "Initialisation in a deep network"),
    "batchnorm": ("4.3.3", "Batch normalization"),
    "minibatch": ("4.3.4", "Mini-batches against the full batch"),
    "optimizers": ("4.3.5", "Optimizers"),
    "schedules": ("4.3.5", "Learning-rate schedules"),
    "capacity": ("4.4.1", "Under- and overfitting against model size"),
    "early_stopping": ("4.4.1", "Early stopping"),
    "regularization": ("4.4.2", "L2 against L1"),
    "dropout": ("4.4.3", "Dropout"),
    "ensembles": ("4.4.3", "Ensembles"),
    "augmentation": ("4.4.4", "Data augmentation"),
}

__all__ = ["EXPERIMENTS"]
