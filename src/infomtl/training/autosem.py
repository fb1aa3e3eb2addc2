"""AutoSeM's first stage in the trainer: the ``autosem`` regime (Guo et al., NAACL 2019).

Training runs in *rounds*. A round draws one task by Thompson sampling
(:class:`~infomtl.data.sampling.ThompsonSampler`), trains ``--autosem-eval-every`` steps
of that task, then scores the model on a fixed validation subset: the ``--primary-task``'s
score, or the Avg over all tasks without one. The reward is 1 if the score is higher than
at the previous evaluation (the first round compares with the model before training),
else 0, and updates the bandit: every arm decays, (α, β) ← 0.7·(α, β) + 0.3, then the
round's task gets α += r, β += 1 − r. With ``--autosem-eval-every 1`` every step is a round,
as in the paper.

The subset (``--autosem-eval-rows`` rows per scored task, stratified by class and group,
drawn with the run's seed) is the same all run, and the validation split alone is used:
never the test split. An epoch has as many steps as in ``per-task``; the k-th draw of a
task in an epoch trains the k-th step of :meth:`~infomtl.data.batching.Batcher.task_steps`
(shuffled passes over its rows), and rounds carry on across epochs.

The state (arms, the generator of the draws, the round in progress, the last score, the
epoch's counts) is saved with ``last/`` (``state.json``'s ``autosem``), so a resumed run,
after an epoch or mid-epoch, draws what the uninterrupted run would have. Each epoch's
line of ``log.jsonl`` holds ``autosem``: every task's (α, β) and posterior mean, how many
steps drew it in the epoch, the rounds and rewards of the epoch, and the last score;
``results.json`` holds the final arms and each task's steps over the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from infomtl.config import TrainConfig
from infomtl.data.batching import Batcher, TaskSteps
from infomtl.data.encoding import EncodedSplit
from infomtl.data.sampling import ThompsonSampler
from infomtl.data.subsample import eval_strata, stratified_indices
from infomtl.data.types import TaskData
from infomtl.errors import ConfigError, did_you_mean
from infomtl.tasks import Task

#: Second word of the seed of the bandit's generator, ``(seed, RNG_STREAM)``: apart from the
#: batcher's ``(seed, epoch)`` and ``(seed, epoch, task)`` generators.
RNG_STREAM = int.from_bytes(b"autosem", "big")


def primary_index(config: TrainConfig, tasks: Sequence[Task]) -> int | None:
    """Position of ``--primary-task`` among the run's tasks (None without one)."""
    if config.batching.primary_task is None:
        return None
    names = [t.name for t in tasks]
    if config.batching.primary_task not in names:
        raise ConfigError(f"--primary-task {config.batching.primary_task!r} is not a task of this run"
                          f"{did_you_mean(config.batching.primary_task, names)} (tasks: {', '.join(names)})")
    return names.index(config.batching.primary_task)


def ratio_list(config: TrainConfig, tasks: Sequence[Task]) -> list[float] | None:
    """``--task-ratios`` as one ratio per task, in task order (0 for a task left out); None
    outside the ratios regime."""
    if not config.batching.task_ratios:
        return None
    names = [t.name for t in tasks]
    unknown = [name for name in config.batching.task_ratios if name not in names]
    if unknown:
        raise ConfigError(f"--task-ratios: {unknown[0]!r} is not a task of this run"
                          f"{did_you_mean(unknown[0], names)} (tasks: {', '.join(names)})")
    ratios = [float(config.batching.task_ratios.get(name, 0.0)) for name in names]
    if not sum(ratios) > 0:
        raise ConfigError("--task-ratios: every ratio is 0")
    return ratios


def reward_splits(val: Sequence[EncodedSplit], val_data: Sequence[TaskData], primary: int | None,
                  rows: int, seed: int) -> list[EncodedSplit]:
    """The validation rows the reward is scored on: ``rows`` rows of each scored task (the
    primary one, or all), stratified by class and group and drawn with ``seed``; the other
    tasks get none."""
    out = []
    for t, (split, data) in enumerate(zip(val, val_data, strict=True)):
        scored = primary is None or t == primary
        take = stratified_indices(eval_strata(data), min(rows, len(split)), seed) if scored else np.zeros(0)
        out.append(split.subset(take.astype(np.int64)))
    return out


class AutoSemSteps:
    """The steps of the ``autosem`` regime (module docstring).

    Args:
        batcher: plans each task's steps (:meth:`Batcher.task_steps`).
        task_names: the run's tasks, in order (the bandit's arms).
        score: the model's current reward score (higher is better).
        eval_every: steps per round.
        seed: the run's seed (the draws' generator is seeded with ``(seed, RNG_STREAM)``).
        scored_on: what ``score`` scores, for the log (a task's name or ``"avg"``).
    """

    def __init__(self, batcher: Batcher, task_names: Sequence[str], score: Callable[[], float],
                 eval_every: int, seed: int, scored_on: str = "avg") -> None:
        if eval_every < 1:
            raise ValueError("eval_every must be >= 1")
        self.batcher, self.names, self.score = batcher, list(task_names), score
        self.eval_every, self.scored_on = eval_every, scored_on
        self.bandit = ThompsonSampler(len(self.names))
        self.rng = np.random.default_rng([seed, RNG_STREAM])
        self.arm: int | None = None  # the round's task (None before the first round)
        self.round_step = 0  # steps of the round done
        self.last_score: float | None = None
        self.total = [0] * len(self.names)  # steps per task over the run
        self.epoch = 0  # the epoch the counts below belong to
        self._new_epoch(0)

    def _new_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.draws = [0] * len(self.names)  # steps per task in the epoch
        self.rounds = self.rewarded = 0  # rounds ended in the epoch, and those rewarded
        self._streams: dict[int, TaskSteps] = {}

    def begin(self) -> None:
        """Before the first step of a run (not of a resumed one): score the untrained model
        and draw the first round's task."""
        if self.arm is None:
            self.last_score = self.score()
            self.arm = self.bandit.choose(self.rng)

    def plan(self, epoch: int) -> list[np.ndarray]:
        """The next step of ``epoch`` (row indices per task: the round's task only); it
        changes nothing until :meth:`after_step` says it was trained."""
        if self.arm is None:
            raise RuntimeError("begin() first")
        if epoch != self.epoch:
            self._new_epoch(epoch)
        if self.arm not in self._streams:
            self._streams[self.arm] = self.batcher.task_steps(epoch, self.arm)
        return self._streams[self.arm][self.draws[self.arm]]

    def after_step(self) -> None:
        """Count the step just trained; at the end of a round, score, reward and draw the next task."""
        assert self.arm is not None  # plan() ran
        self.draws[self.arm] += 1
        self.total[self.arm] += 1
        self.round_step += 1
        if self.round_step < self.eval_every:
            return
        score = self.score()
        reward = 1.0 if self.last_score is not None and score > self.last_score else 0.0
        self.bandit.update(self.arm, reward)
        self.last_score, self.round_step = score, 0
        self.rounds += 1
        self.rewarded += int(reward)
        self.arm = self.bandit.choose(self.rng)

    # -- log and state -----------------------------------------------------------------

    def arms(self) -> dict[str, dict[str, float]]:
        """Every task's ``alpha``, ``beta`` and posterior ``mean``."""
        means = self.bandit.means
        return {name: {"alpha": float(self.bandit.alpha[k]), "beta": float(self.bandit.beta[k]),
                       "mean": float(means[k])} for k, name in enumerate(self.names)}

    def epoch_log(self) -> dict[str, Any]:
        """The ``autosem`` entry of an epoch's log line."""
        return {
            "arms": self.arms(),
            "draws": dict(zip(self.names, self.draws, strict=True)),
            "rounds": self.rounds,
            "rewarded": self.rewarded,
            "score": self.last_score,
            "scored_on": self.scored_on,
        }

    def summary(self) -> dict[str, Any]:
        """The ``autosem`` entry of ``results.json``: the final arms and each task's steps."""
        return {"arms": self.arms(), "steps": dict(zip(self.names, self.total, strict=True)),
                "scored_on": self.scored_on, "eval_every": self.eval_every}

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load_state_dict` needs to go on exactly (JSON-ready)."""
        return {
            "bandit": self.bandit.state_dict(),
            "rng": self.rng.bit_generator.state,
            "arm": self.arm,
            "round_step": self.round_step,
            "last_score": self.last_score,
            "total": list(self.total),
            "epoch": self.epoch,
            "draws": list(self.draws),
            "rounds": self.rounds,
            "rewarded": self.rewarded,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bandit.load_state_dict(state["bandit"])
        self.rng.bit_generator.state = state["rng"]
        self.arm = None if state["arm"] is None else int(state["arm"])
        self.round_step = int(state["round_step"])
        self.last_score = None if state["last_score"] is None else float(state["last_score"])
        self.total = [int(n) for n in state["total"]]
        self._new_epoch(int(state["epoch"]))
        self.draws = [int(n) for n in state["draws"]]
        self.rounds, self.rewarded = int(state["rounds"]), int(state["rewarded"])
