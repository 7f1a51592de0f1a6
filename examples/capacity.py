"""Under- and overfitting against model size (chapter section 4.4.1); code: :mod:`jaxnet.chapter.capacity`.

Writes its PNG figures under ``--out`` (default ``out/capacity``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/capacity.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("capacity")
