"""Which rows of which tasks make each training step.

A :class:`Batcher` turns the training sets into a list of steps for an epoch (row
indices per task); :func:`~infomtl.data.encoding.collate` turns one step into tensors.
:func:`shard` deals a step's rows out to several processes.

Regimes (what one optimisation step holds):

* ``mixed`` (default): rows of every task, in proportion to task size, at least one
  row each; one epoch = one pass over every training set. Steps per epoch:
  ``S = ceil(ΣN_t / B)``; task t's shuffled rows are cut into S near-equal chunks
  (a task with fewer rows than steps is cycled so that every step still holds it).
* ``uniform``: ``B // T`` rows of every task per step, each task cycling through its
  shuffled rows; same S as ``mixed``.
* ``per-task``: one task per step; every task's rows are cut into batches of B and
  all batches of all tasks are shuffled together, so tasks are drawn in proportion
  to their number of batches and every example is seen once per epoch.
* ``temperature``: one task per step, drawn with probability ∝ N_t^(1/T_s), each task
  cycling through its shuffled rows; same number of steps as ``per-task``.
* ``ratios``: as ``temperature``, with the probabilities given (``ratios``, normalised):
  the mixing ratios of AutoSeM's second stage (:mod:`infomtl.experiments.autosem`).
* ``autosem``: one task per step, chosen while training by Thompson sampling
  (:mod:`infomtl.data.sampling`, :mod:`infomtl.training.autosem`), so it has no plan made
  in advance: :meth:`Batcher.task_steps` gives each task's steps of an epoch, shuffled
  passes over its rows cut as in ``per-task``; same number of steps as ``per-task``.

Length bucketing: inside windows of ``bucket_window`` steps, rows are sorted by
length before they are cut into steps (aligned across tasks in ``mixed``), then the
steps are shuffled, so a step holds rows of similar length and pads little.
"""

from __future__ import annotations

import math

import numpy as np

REGIMES = ("mixed", "uniform", "per-task", "temperature", "ratios", "autosem")
#: What a step holds in each regime (``infomtl methods``, ``--help``).
REGIME_HELP = {
    "mixed": "rows of every task in proportion to task size, at least one each; an epoch is one pass "
             "over every training set",
    "uniform": "batch/T rows of every task",
    "per-task": "one task per step, tasks in proportion to their number of batches, every example once "
                "per epoch",
    "temperature": "one task per step, drawn with probability ∝ N_t^(1/T) (--temperature T)",
    "ratios": "one task per step, drawn with the probabilities of --task-ratios (AutoSeM's mixing "
              "ratios, searched by `infomtl autosem`)",
    "autosem": "one task per step, chosen by Beta-Bernoulli Thompson sampling with the reward 'the "
               "primary task's (or Avg's) validation score improved' (AutoSeM stage 1, Guo et al., "
               "NAACL 2019)",
}
#: Regimes whose steps are chosen while training (no plan of the epoch in advance).
ADAPTIVE_REGIMES = ("autosem",)


class Batcher:
    """Plans the steps of each training epoch (see the module docstring).

    Args:
        lengths: per task, the token length of each training row.
        batch_size: rows per step (global, over all processes).
        regime: one of :data:`REGIMES`.
        seed: fixes the order; epoch e uses the generator seeded with ``(seed, e)``.
        temperature: T_s of the ``temperature`` regime.
        bucket_window: steps per length-bucketing window (1 = no bucketing).
        ratios: the ``ratios`` regime's weight of each task (>= 0, not all 0; normalised).
    """

    def __init__(
        self,
        lengths: list[np.ndarray],
        batch_size: int,
        regime: str = "mixed",
        seed: int = 0,
        temperature: float = 2.0,
        bucket_window: int = 50,
        ratios: list[float] | None = None,
    ) -> None:
        if regime not in REGIMES:
            raise ValueError(f"unknown regime {regime!r}; expected one of {', '.join(REGIMES)}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.lengths = [np.asarray(x) for x in lengths]
        self.sizes = [len(x) for x in self.lengths]
        if min(self.sizes, default=0) < 1:
            raise ValueError("every task needs at least one training row")
        self.batch_size = batch_size
        self.regime = regime
        self.seed = seed
        self.temperature = temperature
        self.bucket_window = max(1, bucket_window)
        self.ratios = None if ratios is None else np.asarray(ratios, dtype=np.float64)
        if regime == "ratios":
            if self.ratios is None or self.ratios.shape != (len(self.sizes),):
                raise ValueError("the ratios regime needs one ratio per task")
            if not (np.all(self.ratios >= 0) and self.ratios.sum() > 0):
                raise ValueError(f"ratios must be >= 0 and not all 0, got {self.ratios.tolist()}")

    @property
    def num_tasks(self) -> int:
        return len(self.sizes)

    def steps_per_epoch(self) -> int:
        if self.regime in ("mixed", "uniform"):
            return math.ceil(sum(self.sizes) / self.batch_size)
        return sum(math.ceil(n / self.batch_size) for n in self.sizes)

    def epoch(self, epoch: int) -> list[list[np.ndarray]]:
        """The steps of one epoch: ``steps[s][t]`` = row indices of task t in step s.

        Raises:
            ValueError: an adaptive regime (``autosem``), whose steps are chosen while
                training (see :meth:`task_steps`).
        """
        if self.regime in ADAPTIVE_REGIMES:
            raise ValueError(f"regime {self.regime!r} chooses its steps while training; use task_steps()")
        rng = np.random.default_rng([self.seed, epoch])
        if self.regime == "temperature":
            return self._drawn(rng, np.asarray(self.sizes, dtype=np.float64) ** (1.0 / self.temperature))
        if self.regime == "ratios":
            assert self.ratios is not None  # checked in __init__
            return self._drawn(rng, self.ratios)
        plan = {"mixed": self._mixed, "uniform": self._uniform, "per-task": self._per_task}[self.regime]
        return plan(rng)

    def task_steps(self, epoch: int, t: int) -> TaskSteps:
        """Task t's single-task steps of ``epoch``, for a regime that picks a task per step while
        training: shuffled passes over the task's rows, each cut into ⌈N_t/B⌉ near-equal batches
        as in ``per-task``; ``[k]`` is the step the task's k-th draw trains."""
        return TaskSteps(self, t, np.random.default_rng([self.seed, epoch, t]))

    # -- regimes ---------------------------------------------------------------------

    def _cycled(self, rng: np.random.Generator, t: int, count: int) -> np.ndarray:
        """``count`` rows of task t: shuffled passes over its rows, as many as needed."""
        n = self.sizes[t]
        passes = [rng.permutation(n) for _ in range(math.ceil(count / n))]
        return np.concatenate(passes)[:count]

    def _bucket(self, rows: np.ndarray, sizes: list[int], t: int) -> list[np.ndarray]:
        """Cut ``rows`` into consecutive chunks of ``sizes``, sorted by length per window."""
        chunks: list[np.ndarray] = []
        start = 0
        for w in range(0, len(sizes), self.bucket_window):
            window = sizes[w : w + self.bucket_window]
            span = rows[start : start + sum(window)]
            start += sum(window)
            if self.bucket_window > 1:
                span = span[np.argsort(self.lengths[t][span], kind="stable")]
            bounds = np.cumsum([0, *window])
            chunks.extend(span[bounds[i] : bounds[i + 1]] for i in range(len(window)))
        return chunks

    def _shuffled_steps(self, rng: np.random.Generator, per_task: list[list[np.ndarray]]):
        steps = [list(parts) for parts in zip(*per_task, strict=True)]
        order = rng.permutation(len(steps))
        return [steps[i] for i in order]

    def _mixed(self, rng: np.random.Generator) -> list[list[np.ndarray]]:
        num_steps = self.steps_per_epoch()
        per_task = []
        for t, n in enumerate(self.sizes):
            rows = rng.permutation(n) if n >= num_steps else self._cycled(rng, t, num_steps)
            sizes = [len(c) for c in np.array_split(np.arange(len(rows)), num_steps)]
            per_task.append(self._bucket(rows, sizes, t))
        return self._shuffled_steps(rng, per_task)

    def _uniform(self, rng: np.random.Generator) -> list[list[np.ndarray]]:
        num_steps = self.steps_per_epoch()
        each = max(1, self.batch_size // self.num_tasks)
        per_task = [
            self._bucket(self._cycled(rng, t, each * num_steps), [each] * num_steps, t)
            for t in range(self.num_tasks)
        ]
        return self._shuffled_steps(rng, per_task)

    def _single_task_steps(self, t: int, rows: np.ndarray) -> list[list[np.ndarray]]:
        sizes = [len(c) for c in np.array_split(rows, math.ceil(len(rows) / self.batch_size))]
        empty = np.zeros(0, dtype=np.int64)
        return [
            [chunk if s == t else empty for s in range(self.num_tasks)]
            for chunk in self._bucket(rows, sizes, t)
        ]

    def _per_task(self, rng: np.random.Generator) -> list[list[np.ndarray]]:
        steps = []
        for t, n in enumerate(self.sizes):
            steps.extend(self._single_task_steps(t, rng.permutation(n)))
        order = rng.permutation(len(steps))
        return [steps[i] for i in order]

    def _drawn(self, rng: np.random.Generator, probs: np.ndarray) -> list[list[np.ndarray]]:
        """One task per step, drawn with probability ∝ ``probs``; full batches cycling each task's rows."""
        num_steps = self.steps_per_epoch()
        draws = rng.choice(self.num_tasks, size=num_steps, p=probs / probs.sum())
        steps: list[list[np.ndarray]] = [[] for _ in range(num_steps)]
        for t in range(self.num_tasks):
            where = np.flatnonzero(draws == t)
            if len(where) == 0:
                continue
            rows = self._cycled(rng, t, len(where) * self.batch_size)
            for slot, step in zip(where, self._single_task_steps(t, rows), strict=True):
                steps[slot] = step
        return steps


class TaskSteps:
    """One task's steps of an epoch, made as they are asked for (:meth:`Batcher.task_steps`):
    the same seed and epoch give the same k-th step, however many steps were asked before."""

    def __init__(self, batcher: Batcher, task: int, rng: np.random.Generator) -> None:
        self.batcher, self.task, self.rng = batcher, task, rng
        self.steps: list[list[np.ndarray]] = []

    def __getitem__(self, k: int) -> list[np.ndarray]:
        while len(self.steps) <= k:  # one more pass over the task's shuffled rows
            rows = self.rng.permutation(self.batcher.sizes[self.task])
            self.steps.extend(self.batcher._single_task_steps(self.task, rows))
        return self.steps[k]


def shard(step: list[np.ndarray], rank: int, world_size: int) -> list[np.ndarray]:
    """The rows of a global step that process ``rank`` of ``world_size`` encodes.

    The step's rows, in batch order (grouped by task as :func:`~infomtl.data.encoding.collate` lays them out),
    are dealt out in turn: batch position p goes to process ``p mod world_size``. So every
    process gets ``⌊B/W⌋`` or ``⌈B/W⌉`` rows in all and each task's rows differ by at most
    one between processes. A process gets no rows only when the step holds fewer rows
    than there are processes (the trainer then encodes a stand-in row whose gradient is
    multiplied by 0, see :mod:`infomtl.distributed`). The shards of all ranks partition
    the step; :func:`shard_order` maps them back to batch order.
    """
    if world_size == 1:
        return step
    parts, start = [], 0
    for idx in step:
        parts.append(idx[(rank - start) % world_size :: world_size])
        start += len(idx)
    return parts


def shard_order(step: list[np.ndarray], world_size: int) -> np.ndarray:
    """``order[p]``: where batch position p of ``collate(step)`` sits in the concatenation
    of the batches ``collate(shard(step, r, world_size))`` for r = 0, 1, ... (so that
    ``concatenated[order]`` is in batch order)."""
    sizes = np.array([len(idx) for idx in step], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # rows of task t that rank r holds, and where each rank's batch starts
    held = np.array(
        [[len(range((r - s) % world_size, n, world_size)) for s, n in zip(starts, sizes, strict=True)]
         for r in range(world_size)],
        dtype=np.int64,
    ).reshape(world_size, len(step))
    rank_start = np.concatenate([[0], np.cumsum(held.sum(axis=1))[:-1]])
    task_start = np.cumsum(held, axis=1) - held  # within each rank's batch
    order = np.empty(int(sizes.sum()), dtype=np.int64)
    for t, (s, n) in enumerate(zip(starts, sizes, strict=True)):
        i = np.arange(n)
        rank = (s + i) % world_size
        order[s : s + n] = rank_start[rank] + task_start[rank, t] + i // world_size
    return order
