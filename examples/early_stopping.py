"""Early stopping (chapter section 4.4.1); code: :mod:`jaxnet.chapter.early_stopping`.

Writes its PNG figures under ``--out`` (default ``out/early_stopping``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/early_stopping.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("early_stopping")
