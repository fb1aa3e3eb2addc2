"""Stopping on SIGINT (Ctrl-C) and SIGTERM at a safe point instead of wherever the signal lands.

Within :func:`graceful_stop`, the first SIGINT or SIGTERM only records the request
(:func:`requested`): the trainer looks at it before every step and stops at that step
boundary after writing ``last/``; a sweep looks at it between runs. A second signal stops
at once (SIGINT raises :class:`KeyboardInterrupt`, SIGTERM takes its default action), as
after a kill: ``last/`` keeps the last complete epoch.

Handlers can be installed only in the main thread; elsewhere, and in a run of several
processes (where the processes would have to agree on the step), the block does nothing
and a signal keeps its usual effect. A sweep's worker processes ignore both signals and
follow the sweep's stop event instead (:func:`follow`), so one signal reaches each run once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: The signals that ask for a stop at the next safe point.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested: int | None = None
_depth = 0
_previous: dict[int, Any] = {}
_event: Any = None  # the sweep's stop event, in a sweep's worker process


def requested() -> int | None:
    """The signal that asked for a stop (None: none did)."""
    if _requested is None and _event is not None and _event.is_set():
        return signal.SIGTERM
    return _requested


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _handle(signum: int, frame: Any) -> None:
    global _requested
    if _requested is None:  # the loop prints why it stops: nothing is written from here
        _requested = signum
        return
    for sig, previous in _previous.items():  # a second signal: stop now
        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextmanager
def graceful_stop(enabled: bool = True) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are recorded for :func:`requested` (see the module
    docstring). Blocks nest: the outermost one installs the handlers and restores the
    previous ones when it ends."""
    global _depth, _requested, _previous
    active = enabled and _event is None and threading.current_thread() is threading.main_thread()
    if active:
        if _depth == 0:
            _requested = None
            _previous = {sig: signal.signal(sig, _handle) for sig in STOP_SIGNALS}
        _depth += 1
    try:
        yield
    finally:
        if active:
            _depth -= 1
            if _depth == 0:
                for sig, previous in _previous.items():
                    signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
                _previous, _requested = {}, None


def follow(event: Any) -> None:
    """In a sweep's worker process: ignore SIGINT and SIGTERM (the sweep receives them) and stop
    when the sweep sets ``event`` (a ``multiprocessing`` Event)."""
    global _event
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _event = event
