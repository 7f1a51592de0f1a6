"""Initialisation in a deep network (chapter section 4.3.2); code: :mod:`jaxnet.chapter.initialization`.

Writes its PNG figures under ``--out`` (default ``out/initialization``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/initialization.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("initialization")
