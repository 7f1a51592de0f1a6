"""Walking a jaxpr's nested sub-jaxprs (loop bodies, cond branches), for tests that count loops and products."""

from __future__ import annotations


def subjaxprs(eqn):
    """The jaxprs an equation holds in its params (a scan's body, a while's cond and body, a cond's branches)."""
    for v in eqn.params.values():
        for item in v if isinstance(v, (tuple, list)) else (v,):
            inner = getattr(item, "jaxpr", item)
            if hasattr(inner, "eqns"):
                yield inner


def has_dot(jaxpr) -> bool:
    """Whether the jaxpr, or any jaxpr nested in it, holds a matrix product (``dot_general``)."""
    return any(e.primitive.name == "dot_general" or any(map(has_dot, subjaxprs(e))) for e in jaxpr.eqns)
