"""XOR needs a hidden layer (chapter section 4.1.3); code: :mod:`jaxnet.chapter.xor`.

Writes its PNG figures under ``--out`` (default ``out/xor``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/xor.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("xor")
