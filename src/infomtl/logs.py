"""The library's logging habits.

Every module logs to its own ``logging.getLogger(__name__)``: progress lines at INFO,
warnings at WARNING. The library attaches no handler and sets no level outside a
``with`` block; the command line (:mod:`infomtl.cli`) decides where the lines go.
From Python, ``logging.basicConfig(level=logging.INFO)`` shows the progress lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quieted(name: str, level: int = logging.WARNING) -> Iterator[None]:
    """Within the block, drop the records of logger ``name`` (and its children) below
    ``level``; the logger's own level is restored afterwards."""
    logger = logging.getLogger(name)
    previous = logger.level
    if logger.getEffectiveLevel() < level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)
