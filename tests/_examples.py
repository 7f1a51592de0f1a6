"""Loading an ``examples/NAME.py`` script as a module, for the tests that run its pieces."""

from __future__ import annotations

import importlib.util
import pathlib

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    """The module ``examples/<name>.py``, executed (its ``main`` guarded, so nothing trains on import)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
