"""Process-wide settings the entry points (``python -m bot``, ``ollacord``) make first."""

from __future__ import annotations

import os

# numpy's BLAS would split each knowledge-base scan over every core, then keep its extra
# thread spinning ~125 ms after it: on a 2-core server that took a core from the event loop
# streaming answers, and a small scan waited ~8 ms for a free core (bench/retrieval.py).
BLAS_THREADS = "1"


def limit_blas_threads() -> None:
    """One BLAS thread, unless the admin chose otherwise; before numpy is imported."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, BLAS_THREADS)
