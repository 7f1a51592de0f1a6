"""Data: generated datasets, normalization, mini-batching and augmentation."""

from jaxnet.data import augment
from jaxnet.data.augment import make_augment, pipeline
from jaxnet.data.batching import epoch_batches, num_steps, permutation, shuffle_batches
from jaxnet.data.datasets import blobs, circle, load_digits, spirals, xor
from jaxnet.data.idx import load_mnist, parse_idx, read_idx, write_idx
from jaxnet.data.normalization import (
    PCAStats,
    StandardizeStats,
    center,
    pca_decorrelate,
    pca_decorrelate_inverse,
    pca_fit,
    pca_whiten,
    pca_whiten_inverse,
    standardize,
    standardize_fit,
    standardize_inverse,
    zca_whiten,
    zca_whiten_inverse,
)
from jaxnet.data.splits import split_indices, train_test_split, train_val_test_split

__all__ = [
    "PCAStats",
    "StandardizeStats",
    "augment",
    "blobs",
    "center",
    "circle",
    "epoch_batches",
    "load_digits",
    "load_mnist",
    "make_augment",
    "num_steps",
    "parse_idx",
    "pca_decorrelate",
    "pca_decorrelate_inverse",
    "pca_fit",
    "pca_whiten",
    "pca_whiten_inverse",
    "permutation",
    "pipeline",
    "read_idx",
    "shuffle_batches",
    "spirals",
    "split_indices",
    "standardize",
    "standardize_fit",
    "standardize_inverse",
    "train_test_split",
    "train_val_test_split",
    "write_idx",
    "xor",
    "zca_whiten",
    "zca_whiten_inverse",
]
