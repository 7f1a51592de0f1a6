"""Optimizers (chapter section 4.3.5); code: :mod:`jaxnet.chapter.optimizers`.

Writes its PNG figures under ``--out`` (default ``out/optimizers``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/optimizers.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("optimizers")
