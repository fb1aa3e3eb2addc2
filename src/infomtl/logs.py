"""The library's logging habits.

Every module logs to its own ``logging.getLogger(__name__)``: progress lines at INFO,
warnings at WARNING. The library attaches no handler and sets no level outside a
``with`` block; the command line (:mod:`infomtl.cli`) decides where the lines go.
From Python, ``logging.basicConfig(level=logging.INFO)`` shows the progress lines.
Progress bars (tqdm, on stderr) follow :func:`show_progress`.
"""

from __future__ import annotations

import logging
import sys
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


def show_progress(setting: bool | None) -> bool:
    """Whether to draw progress bars: ``setting`` when given (``--progress`` /
    ``--no-progress``), else only when stderr (where the bars go) is a terminal."""
    if setting is not None:
        return bool(setting)
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def lines_to_stderr(name: str = "infomtl") -> Iterator[None]:
    """Within the block, the handlers of logger ``name`` that write to stdout write to stderr
    instead (``infomtl predict`` writing its predictions to stdout keeps them alone there)."""
    moved = [h for h in logging.getLogger(name).handlers
             if isinstance(h, logging.StreamHandler) and h.stream is sys.stdout]
    for handler in moved:
        handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler in moved:
            handler.setStream(sys.stdout)
