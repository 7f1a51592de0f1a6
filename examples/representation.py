"""Representation learning on the circle data (chapter section 4.1.1); code: :mod:`jaxnet.chapter.representation`.

Writes its PNG figures under ``--out`` (default ``out/representation``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/representation.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("representation")
