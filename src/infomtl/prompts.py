"""How a task is put to a language model: a :class:`Prompt` per task, as data.

The zero-shot LLM baseline (:mod:`infomtl.baselines`) asks a chat model one question per
row. A prompt holds what the task is (``description``), what to answer
(``instruction``), the allowed answer of each label (``answers``, in label id order) and
how a row is shown (``template``, with ``{text}`` and optionally ``{pair}`` (the row's
second text) and ``{group}`` (its group: the stance target, EI-reg's emotion)). The rule
that closes the question ("Answer with exactly one of: ...") follows from the task's
kind and is added by the baseline, not written here.

:data:`BENCHMARK_PROMPTS` holds the built-in prompts of every TweetEval, AffectEval and
synthetic task; a task folder's prompt comes from its ``task.yaml``
(``instruction``, ``answers``, ``template``, ``scale``, next to ``description``), and
:func:`default_prompt` covers what a ``task.yaml`` leaves out.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field

from infomtl.tasks import Task, TaskKind

#: The fields a template may name.
TEMPLATE_FIELDS: tuple[str, ...] = ("text", "pair", "group")


@dataclass(frozen=True)
class Prompt:
    """One task's question to a language model.

    Attributes:
        description: what the task is (first line of the question).
        instruction: what to answer.
        answers: the allowed answer of each label, in label id order (classification and
            multi-label); empty = the label names. Matched case-insensitively, with
            spaces, ``-`` and ``_`` between words interchangeable.
        template: how a row is shown: ``{text}``, ``{pair}`` (the second text of a pair
            task), ``{group}`` (the row's group, shown through ``group_text``).
        group_text: how a group value is written in the question (``hillary`` → ``Hillary
            Clinton``); values not listed are written as they are.
        scale: ``(low, high)`` of a regression answer; ``None``: the training split's range.
    """

    description: str
    instruction: str
    answers: tuple[str, ...] = ()
    template: str = "Text: {text}"
    group_text: Mapping[str, str] = field(default_factory=dict)
    scale: tuple[float, float] | None = None

    def answers_for(self, task: Task) -> tuple[str, ...]:
        """The allowed answers of ``task``'s labels (its label names where none are set)."""
        return self.answers or task.labels

    def fields(self) -> set[str]:
        """The fields the template names."""
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}

    def check(self, task: Task) -> None:
        """Raise ``ValueError`` (one line) for a prompt that cannot serve ``task``."""
        fields = self.fields()
        unknown = sorted(fields - set(TEMPLATE_FIELDS))
        if unknown or "text" not in fields:
            raise ValueError(f"template {self.template!r} must show {{text}} and may show only "
                             f"{', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
                             + (f" (got {', '.join('{' + f + '}' for f in unknown)})" if unknown else ""))
        if task.kind is TaskKind.REGRESSION:
            if self.answers:
                raise ValueError("a regression task is answered with numbers: it takes no 'answers'")
            if self.scale is not None and not self.scale[0] < self.scale[1]:
                raise ValueError(f"scale {list(self.scale)} must be [low, high] with low < high")
            return
        answers = self.answers_for(task)
        if len(answers) != len(task.labels):
            raise ValueError(f"{len(answers)} answers for {len(task.labels)} labels ({', '.join(task.labels)})")
        keys = [normalized(a) for a in answers]
        if any(not k for k in keys):
            raise ValueError(f"an answer is empty in {list(answers)}")
        repeated = sorted({a for a, k in zip(answers, keys, strict=True) if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"answers {repeated} are the same answer (case, spaces, '-' and '_' aside)")
        if task.kind is TaskKind.MULTILABEL and "none" in keys:
            raise ValueError("'none' is the answer of a multi-label row with no label; no label may use it")


def normalized(answer: str) -> str:
    """An answer as it is compared: lower case, words separated by single spaces
    (``"Not-Offensive"`` → ``"not offensive"``)."""
    return " ".join(answer.lower().replace("-", " ").replace("_", " ").split())


def default_prompt(task: Task) -> Prompt:
    """The prompt of a task that has none: its description, a question by kind, its label names."""
    description = task.description or f"The task {task.name!r}."
    instruction = {
        TaskKind.CLASSIFICATION: "Which label fits the text best?",
        TaskKind.MULTILABEL: "Which labels apply to the text?",
        TaskKind.REGRESSION: "Rate the text"
        + (f" on {', '.join(task.targets)}." if task.targets != ("score",) else "."),
    }[task.kind]
    return Prompt(description, instruction)


_EMOTION = Prompt(
    "Emotion recognition in tweets (SemEval-2018 Task 1).",
    "Which emotion does the author of the tweet express?",
    template="Tweet: {text}",
)
_STANCE_TARGETS = {
    "abortion": "Legalization of Abortion",
    "atheism": "Atheism",
    "climate": "Climate Change is a Real Concern",
    "feminist": "Feminist Movement",
    "hillary": "Hillary Clinton",
}

#: The built-in prompts: benchmark -> task -> prompt.
BENCHMARK_PROMPTS: dict[str, dict[str, Prompt]] = {
    "tweeteval": {
        "emotion": _EMOTION,
        "hate": Prompt(
            "Hate speech detection in tweets (SemEval-2019 Task 5): hate speech against immigrants or women.",
            "Is the tweet hate speech?",
            answers=("not hate", "hate"),
            template="Tweet: {text}",
        ),
        "irony": Prompt(
            "Irony detection in tweets (SemEval-2018 Task 3).",
            "Is the tweet ironic?",
            answers=("not ironic", "ironic"),
            template="Tweet: {text}",
        ),
        "offensive": Prompt(
            "Offensive language identification in tweets (SemEval-2019 Task 6): insults, threats, profanity.",
            "Is the tweet offensive?",
            answers=("not offensive", "offensive"),
            template="Tweet: {text}",
        ),
        "sentiment": Prompt(
            "Sentiment analysis of tweets (SemEval-2017 Task 4A).",
            "What is the sentiment of the tweet?",
            template="Tweet: {text}",
        ),
        "stance": Prompt(
            "Stance detection in tweets (SemEval-2016 Task 6): the author's position towards a target.",
            "Is the author of the tweet in favor of the target, against it, or neither (none)?",
            answers=("none", "against", "favor"),
            template="Target: {group}\nTweet: {text}",
            group_text=_STANCE_TARGETS,
        ),
    },
    "affecteval": {
        "goemotions": Prompt(
            "Emotion recognition in Reddit comments (GoEmotions, 27 emotions and neutral).",
            "Which emotion does the comment express (neutral if none)?",
            template="Comment: {text}",
        ),
        "emotioneval": _EMOTION,
        "emobank": Prompt(
            "EmoBank: the emotion a sentence expresses, as valence (V: unpleasant to pleasant), "
            "arousal (A: calm to excited) and dominance (D: controlled to in control).",
            "Rate the sentence's valence, arousal and dominance.",
            template="Sentence: {text}",
            scale=(1.0, 5.0),
        ),
        "ei_reg": Prompt(
            "Emotion intensity of tweets (SemEval-2018 Task 1 EI-reg).",
            "How intensely does the author of the tweet feel the emotion, from 0 (not at all) to 1 (extremely)?",
            template="Emotion: {group}\nTweet: {text}",
            scale=(0.0, 1.0),
        ),
    },
    "synthetic": {
        "sentiment": Prompt("The opinion of a short review sentence.", "What is the opinion of the sentence?"),
        "topic": Prompt("The topic of a short sentence.", "What is the sentence about?"),
        "urgency": Prompt("Whether the writer asks for a quick answer.", "How urgent is the request?"),
    },
}
