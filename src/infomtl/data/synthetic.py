"""A small built-in synthetic multi-task text set, for ``infomtl demo`` and tests (offline).

Every row is one English-like review-style sentence generated from templates and
word lists. Three classification tasks label the *same* sentences:

* ``sentiment`` (negative / neutral / positive): the evaluative adjective;
* ``topic`` (sports / food / tech / travel): the nouns;
* ``urgency`` (low / high): the closing request.

Some rows carry a distractor clause that mentions another topic or the opposite
sentiment, and each task's label is replaced by a random other class with
probability ``noise`` (10% by default), so a small model learns the tasks well but
not perfectly. The same seed always gives the same data.
"""

from __future__ import annotations

import random

import numpy as np

from infomtl.data.types import MultiTaskData, TaskData
from infomtl.errors import ConfigError
from infomtl.tasks import Metric, Task, TaskKind

_F1 = (Metric("macro_f1", "macro_f1"), Metric("accuracy", "accuracy", official=False))

#: The tasks of the synthetic benchmark, in table order.
SYNTHETIC_TASKS: tuple[Task, ...] = (
    Task("sentiment", TaskKind.CLASSIFICATION, labels=("negative", "neutral", "positive"),
         metrics=_F1, description="synthetic: opinion of a short review sentence"),
    Task("topic", TaskKind.CLASSIFICATION, labels=("sports", "food", "tech", "travel"),
         metrics=_F1, description="synthetic: what the sentence is about"),
    Task("urgency", TaskKind.CLASSIFICATION, labels=("low", "high"),
         metrics=_F1, description="synthetic: whether the writer asks for a quick answer"),
)

_NOUNS = {
    "sports": ["match", "game", "stadium", "team", "coach", "tournament", "race", "season"],
    "food": ["restaurant", "dinner", "menu", "pizza", "bakery", "cafe", "recipe", "soup"],
    "tech": ["laptop", "phone", "update", "app", "software", "camera", "battery", "website"],
    "travel": ["flight", "hotel", "trip", "beach", "airport", "train ride", "museum", "tour"],
}
_DETAILS = {
    "sports": ["the final score", "the players", "the last goal", "the league table"],
    "food": ["the chef", "the dessert", "the flavors", "the portions"],
    "tech": ["the screen", "the install", "the settings", "the charger"],
    "travel": ["the luggage", "the booking", "the view", "the check-in"],
}
_ADJECTIVES = {
    "negative": ["terrible", "awful", "disappointing", "horrible", "poor", "frustrating",
                 "dreadful", "annoying", "boring", "a mess"],
    "neutral": ["ordinary", "standard", "typical", "average", "normal", "unremarkable",
                "routine", "as described", "about what I expected", "neither good nor bad"],
    "positive": ["wonderful", "great", "excellent", "delightful", "fantastic", "lovely",
                 "impressive", "amazing", "pleasant", "superb"],
}
_CLOSINGS = {
    "low": ["No rush at all.", "Just sharing my thoughts.", "Reply whenever you have time.",
            "Thought you might like to know.", "Nothing needs to be done.",
            "Maybe we can talk about it next month."],
    "high": ["Please reply as soon as possible.", "I need an answer today.",
             "This is urgent.", "Can someone sort this out right now?",
             "Please respond before tonight.", "We have to decide immediately."],
}
_OPENERS = ["Honestly,", "Yesterday", "Today", "I think", "Apparently", "As usual",
            "This morning", "To be fair,", "Last weekend", "In my opinion,", "Well,", "So"]
_VERBS = ["was", "seemed", "felt", "looked", "turned out", "has been"]
_ADVERBS = ["", "", "really ", "quite ", "very ", "surprisingly ", "rather ", "honestly "]
_FILLERS = ["and {detail} came up too", "and we talked about {detail}", "even {detail}",
            "including {detail}", "and {detail} changed a bit"]


def synthetic_benchmark(
    seed: int = 0, n_train: int = 600, n_val: int = 150, n_test: int = 150, noise: float = 0.1
) -> MultiTaskData:
    """The synthetic three-task benchmark with ``train``, ``val`` and ``test`` splits.

    Args:
        seed: fixes every text and label.
        n_train, n_val, n_test: rows per split (the same sentences serve every task).
        noise: probability that a task's label is replaced by a random other class.

    Raises:
        ConfigError: a split size below 1 or a noise outside ``[0, 1)``.
    """
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"synthetic benchmark: n_{split} must be an integer >= 1, got {n!r}")
    if not 0 <= noise < 1:
        raise ConfigError(f"synthetic benchmark: noise must be in [0, 1), got {noise!r}")
    rng = random.Random(seed)
    splits: dict[str, dict[str, TaskData]] = {t.name: {} for t in SYNTHETIC_TASKS}
    for split, n in sizes.items():
        rows = [_row(rng) for _ in range(n)]
        texts = [text for text, _ in rows]
        for k, task in enumerate(SYNTHETIC_TASKS):
            labels = np.array([_noisy(rng, ids[k], len(task.labels), noise) for _, ids in rows])
            splits[task.name][split] = TaskData(
                task=task, split=split, texts=list(texts), labels=labels,
                source=f"synthetic(seed={seed})",
            )
    return MultiTaskData(tasks=list(SYNTHETIC_TASKS), splits=splits)


def _row(rng: random.Random) -> tuple[str, tuple[int, int, int]]:
    """One sentence and its clean (sentiment, topic, urgency) label ids."""
    sentiments, topics, urgencies = (t.labels for t in SYNTHETIC_TASKS)
    s, t, u = rng.randrange(len(sentiments)), rng.randrange(len(topics)), rng.randrange(len(urgencies))
    sentiment, topic = sentiments[s], topics[t]
    noun = rng.choice(_NOUNS[topic])
    clause = f"{rng.choice(_OPENERS)} the {noun} {rng.choice(_VERBS)} "
    clause += rng.choice(_ADVERBS) + rng.choice(_ADJECTIVES[sentiment])
    extras = []
    if rng.random() < 0.5:
        extras.append(rng.choice(_FILLERS).format(detail=rng.choice(_DETAILS[topic])))
    roll = rng.random()
    if roll < 0.15:  # sentiment distractor: an opinion that is not the writer's
        other = rng.choice([x for x in sentiments if x != sentiment])
        extras.append(f"although a friend said it was {rng.choice(_ADJECTIVES[other])}")
    elif roll < 0.30:  # topic distractor: a passing mention of another topic
        other = rng.choice([x for x in topics if x != topic])
        extras.append(f"unlike the {rng.choice(_NOUNS[other])} last week")
    if extras:
        clause += ", " + ", ".join(extras)
    text = f"{clause}. {rng.choice(_CLOSINGS[urgencies[u]])}"
    return text[0].upper() + text[1:], (s, t, u)


def _noisy(rng: random.Random, label: int, num_labels: int, noise: float) -> int:
    if rng.random() >= noise:
        return label
    return rng.choice([k for k in range(num_labels) if k != label])


def vocabulary() -> list[str]:
    """Every lower-cased word the generator uses (the ``tiny`` backbone's vocabulary has them)."""
    phrases = [*_OPENERS, *_VERBS, *_ADVERBS, *_FILLERS]
    for table in (_NOUNS, _DETAILS, _ADJECTIVES, _CLOSINGS):
        for values in table.values():
            phrases.extend(values)
    words = []
    for phrase in phrases:
        for word in phrase.lower().replace("{detail}", " ").split():
            word = word.strip(".,?!-")
            if word.isalpha():
                words.append(word)
    return sorted(set(words))
