"""Mini-batches against the full batch (chapter section 4.3.4); code: :mod:`jaxnet.chapter.minibatch`.

Writes its PNG figures under ``--out`` (default ``out/minibatch``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/minibatch.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("minibatch")
