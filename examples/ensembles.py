"""Ensembles (chapter section 4.4.3); code: :mod:`jaxnet.chapter.ensembles`.

Writes its PNG figures under ``--out`` (default ``out/ensembles``) and prints the numbers behind them
and the chapter's claims it checked. Quick by default; ``--full`` for the publication-size run.

Usage::

    python examples/ensembles.py [--out DIR] [--full]
"""

from jaxnet.chapter._common import run_example

if __name__ == "__main__":
    run_example("ensembles")
