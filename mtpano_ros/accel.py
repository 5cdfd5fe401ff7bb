"""Compiled per-pixel kernels with numba, where it is installed (requirements.txt and package.xml name it).

The node's per-frame post-processing and point-cloud packing are single loops over every pixel: compiled, each
reads its inputs and writes its outputs once (numpy needs several passes and temporaries). Every caller keeps a
numpy/OpenCV path with the same results for machines without numba, or with ``MTPANO_NO_NUMBA=1`` (tests compare
the two). Kernels compile on first use (about a second each) and are cached on disk by numba.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

_log = logging.getLogger(__name__)


def jit_kernel(fn: Callable) -> Callable | None:
    """fn compiled by ``numba.njit(nogil=True, cache=True)`` (lazily, per argument types), or None when numba is
    missing or MTPANO_NO_NUMBA=1 (the caller then takes its numpy path)."""
    if os.environ.get("MTPANO_NO_NUMBA", "") not in ("", "0"):
        return None
    try:
        import numba
    except ImportError:  # a robot without python3-numba: the numpy paths run, a little slower
        _log.info("numba is not installed: %s runs with numpy", fn.__name__)
        return None
    try:
        return numba.njit(nogil=True, cache=True)(fn)
    except RuntimeError as exc:  # no writable cache location (read-only install, no home): compile per process
        _log.info("numba cannot cache %s (%s): compiling it in memory", fn.__name__, exc)
        return numba.njit(nogil=True)(fn)
