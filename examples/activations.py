"""Activation functions and their derivatives (chapter section 4.1.2); code: :mod:`jaxnet.chapter.activations`.

Writes its PNG figures under ``--out`` (default ``out/activations``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/activations.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("activations")
