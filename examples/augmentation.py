"""Data augmentation (chapter section 4.4.4); code: :mod:`jaxnet.chapter.augmentation`.

Writes its PNG figures under ``--out`` (default ``out/augmentation``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/augmentation.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("augmentation")
