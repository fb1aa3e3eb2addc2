"""Where a run stands: the counters a run folder's ``last/state.json`` holds, and what a run
stopped by a signal says about them.

``epoch`` is the last complete epoch; ``epoch_step`` (0 after an epoch ends) counts the steps of
the next epoch already done, for a run stopped mid-epoch by SIGINT / SIGTERM
(:mod:`infomtl.training.signals`). A resumed run continues at that step with the saved
optimizer, schedule, RNG states and running sums of the epoch, so it ends as the
uninterrupted run would have.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infomtl.artifacts.run_folder import resume_command
from infomtl.errors import Interrupted
from infomtl.fileio import WriteError
from infomtl.training import signals


@dataclass
class RunState:
    """The counters of a run between steps (saved in ``last/state.json``)."""

    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    elapsed: float = 0.0

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RunState:
        """Read from a saved state (one saved before ``epoch_step`` existed has 0 there)."""
        defaults = asdict(cls())
        return cls(**{name: type(value)(state.get(name, value)) for name, value in defaults.items()})

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    def where(self) -> str:
        """``"epoch 2"`` or ``"step 14 of epoch 3"``: the point a resume continues from."""
        if self.epoch_step:
            return f"step {self.epoch_step} of epoch {self.epoch + 1}"
        return f"epoch {self.epoch}"


def interrupted(run_dir: Path, state: RunState, saved_now: bool) -> Interrupted:
    """The :class:`~infomtl.errors.Interrupted` of a run stopped by the signal
    :func:`signals.requested` names, with what ``last/`` holds and the command that resumes."""
    signum = signals.requested() or 0
    if saved_now:
        saved = f"{run_dir}: saved after {state.where()}"
    elif state.epoch or state.epoch_step:
        saved = f"{run_dir}: last/ holds the run after {state.where()}"
    else:
        saved = f"{run_dir}: stopped before the first epoch ended"
    return Interrupted(signals.signal_name(signum), saved, resume_command(run_dir), 128 + signum)


def with_resume_hint(exc: WriteError, run_dir: Path) -> WriteError:
    """A failed write of a run, with what to do once the cause is fixed: resume the run
    (once it has a ``config.yaml``) or run the same command again."""
    if (run_dir / "config.yaml").is_file():
        return exc.with_hint(f"the run is kept; once fixed, resume with: {resume_command(run_dir)}")
    return exc.with_hint("once fixed, run the same command again")
