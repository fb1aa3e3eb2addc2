"""The questions of the zero-shot LLM baseline: one chat message per row.

A row's question is one user message (no system message, so that chat templates
without a system role work too)::

    {description}
    {instruction}
    {answer rule}

    {template filled with the row: text, pair, group}

The answer rule follows from the task's kind:

* classification: ``Answer with exactly one of: a, b, c.``
* multi-label: ``Answer with every label that applies, as a comma-separated list of:
  a, b, c; or none if none applies.``
* regression: ``Answer with a number from LOW to HIGH.`` (one output) or ``Answer with
  D numbers from LOW to HIGH, for V, A, D in that order, separated by commas.``, where
  ``[LOW, HIGH]`` is the prompt's ``scale``, else the range of the training split's
  targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infomtl.data.types import TaskData
from infomtl.errors import ConfigError
from infomtl.prompts import Prompt
from infomtl.tasks import Task, TaskKind

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class TaskQuestions:
    """How one task is asked: its prompt, its allowed answers and, for regression, its scale."""

    task: Task
    prompt: Prompt
    scale: tuple[float, float] | None = None  # regression only

    @classmethod
    def build(cls, task: Task, prompt: Prompt, train: TaskData) -> TaskQuestions:
        """Check ``prompt`` against ``task``; a regression task's scale falls back on the range
        of the training targets."""
        try:
            prompt.check(task)
        except ValueError as exc:
            raise ConfigError(f"task {task.name!r}: prompt: {exc}") from None
        scale = None
        if task.kind is TaskKind.REGRESSION:
            scale = prompt.scale or (float(np.min(train.labels)), float(np.max(train.labels)))
            if not scale[0] < scale[1]:
                scale = (scale[0], scale[0] + 1.0)  # constant targets: any unit range holds them
        return cls(task, prompt, scale)

    @property
    def answers(self) -> tuple[str, ...]:
        return self.prompt.answers_for(self.task)

    def rule(self) -> str:
        """The sentence that says how to answer (see the module docstring)."""
        kind = self.task.kind
        if kind is TaskKind.CLASSIFICATION:
            return f"Answer with exactly one of: {', '.join(self.answers)}."
        if kind is TaskKind.MULTILABEL:
            return (f"Answer with every label that applies, as a comma-separated list of: "
                    f"{', '.join(self.answers)}; or none if none applies.")
        assert self.scale is not None
        low, high = self.scale
        targets = self.task.targets
        if len(targets) == 1:
            return f"Answer with a number from {low:g} to {high:g}."
        return (f"Answer with {len(targets)} numbers from {low:g} to {high:g}, for {', '.join(targets)} "
                "in that order, separated by commas.")

    def check_rows(self, part: TaskData) -> None:
        """The template's ``{pair}`` and ``{group}`` need rows that have them."""
        fields = self.prompt.fields()
        for name, values in (("pair", part.pairs), ("group", part.groups)):
            if name in fields and values is None:
                raise ConfigError(f"task {self.task.name!r}: the prompt's template shows {{{name}}}, but the "
                                  f"{part.split} rows have no {'text pair' if name == 'pair' else 'group'}")

    def messages(self, part: TaskData) -> list[Messages]:
        """The question of every row of ``part``, in row order."""
        self.check_rows(part)
        head = "\n".join(line for line in (self.prompt.description, self.prompt.instruction, self.rule()) if line)
        groups = self.prompt.group_text
        out = []
        for i, text in enumerate(part.texts):
            pair = part.pairs[i] if part.pairs is not None else ""
            group = part.groups[i] if part.groups is not None else ""
            row = self.prompt.template.format(text=text, pair=pair, group=groups.get(group, group))
            out.append([{"role": "user", "content": f"{head}\n\n{row}"}])
        return out
