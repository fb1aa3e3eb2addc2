"""``infomtl sweep --engine ray``: each run of a sweep as one task of a Ray cluster.

One task per run (the sweep's ``run_one``), holding ``cpus_per_run`` CPUs (also its torch
threads) and ``gpus_per_run`` GPUs. The store must be on a file system every Ray node sees;
a task writes only its run folder, and this process (the driver) writes the index as the
tasks end, through the sweep's ``done``. A task ends as a local run would:

* its run finished: ``done(rid, None, outcome)``;
* it raised, or its worker died (killed, out of memory, its node lost):
  ``done(rid, "<Type>: <first line>")``, the original exception's type and message, not
  Ray's wrapper with the remote traceback. Ray does not retry the task (``max_retries=0``):
  the next sweep resumes the run from its ``last/``, as after a failed local run, instead of
  Ray training it again up to three times;
* a failed write (:class:`~infomtl.fileio.WriteError`) stops the sweep, as SIGINT / SIGTERM
  do: the tasks not started are dropped, the running ones are cancelled (``ray.cancel``,
  which a run receives as a SIGINT: it stops at its next step boundary with ``last/``
  written), and once they have ended the sweep raises the error, or
  :class:`~infomtl.errors.Interrupted`. A second signal stops the driver at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from infomtl.errors import ConfigError, Interrupted, first_line
from infomtl.experiments.store import PlannedRun, Store
from infomtl.fileio import WriteError
from infomtl.training import signals

#: How often (s) the driver looks for a stop request while it waits on the tasks.
POLL_S = 0.5


@dataclass(frozen=True)
class RayOptions:
    """Where and how ``--engine ray`` runs each run: the cluster ``address`` (None: a local
    Ray instance, or the one ``RAY_ADDRESS`` names) and the resources one run holds."""

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0


class Done(Protocol):
    """How a run's end is reported: its id, its error or ``None``, and ``run_one``'s outcome."""

    def __call__(self, rid: str, error: str | None, outcome: str = "trained") -> None: ...


def task_error(exc: BaseException) -> BaseException:
    """What a task raised: the original exception inside Ray's ``RayTaskError`` (its
    ``cause``), or ``exc`` itself (a dead worker's ``WorkerCrashedError``, a cancellation)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def ray_runs(run_one: Callable[[dict[str, Any], str, int], str], todo: list[PlannedRun], store_root: str,
             options: RayOptions, done: Done) -> None:
    """Train ``todo`` as Ray tasks of ``run_one(config_dict, store_root, threads)``, reporting
    each as it ends (see the module docstring)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'infomtl[ray]'") from None
    ray.init(address=options.address, ignore_reinit_error=True, log_to_driver=False)
    threads = max(1, int(options.cpus_per_run))
    remote = ray.remote(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run, max_retries=0)(run_one)
    pending = {remote.remote(run.config.to_dict(), store_root, threads): run.run_id for run in todo}
    failure: WriteError | None = None
    cancelled: set[str] = set()  # the runs whose tasks a stop cancelled
    stopping = False
    while pending:
        ended, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
        for ref in ended:
            rid = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - one failed run must not stop the sweep
                error = task_error(exc)
                if isinstance(error, WriteError):
                    failure = failure or error
                elif rid not in cancelled:  # a cancelled task ends in TaskCancelledError
                    done(rid, f"{type(error).__name__}: {first_line(error)}")
            else:
                done(rid, None, outcome)
        if (failure is not None or signals.requested() is not None) and not stopping:
            stopping, cancelled = True, set(pending.values())
            for ref in pending:
                ray.cancel(ref)  # not started: dropped; running: a SIGINT, a stop at the next step
    if failure is not None:
        raise failure
    signum = signals.requested()
    if signum is not None:
        folders = [Store(Path(store_root)).run_dir(rid) for rid in sorted(cancelled)]
        saved = [f"{folder}: last/ saved" for folder in folders if (folder / "last").is_dir()]
        raise Interrupted(signals.signal_name(signum), "; ".join(saved) or f"{store_root}: no run in progress",
                          "", 128 + signum)
