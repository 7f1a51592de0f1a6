"""Data: generated datasets, normalization, mini-batching and augmentation."""
from jaxnet.data.datasets import circle, xor

__all__ = ["circle", "xor"]
