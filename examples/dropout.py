"""Dropout (chapter section 4.4.3); code: :mod:`jaxnet.chapter.dropout`.

Writes its PNG figures under ``--out`` (default ``out/dropout``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/dropout.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("dropout")
