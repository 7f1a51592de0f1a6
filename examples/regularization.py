"""L2 against L1 (chapter section 4.4.2); code: :mod:`jaxnet.chapter.regularization`.

Writes its PNG figures under ``--out`` (default ``out/regularization``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/regularization.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("regularization")
