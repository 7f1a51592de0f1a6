"""Computational graphs, handwritten backprop and gradient checks (§4.2)."""

__all__: list[str] = []
