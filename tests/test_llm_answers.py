"""The zero-shot LLM baseline's questions and how its replies are read (no model involved)."""

from __future__ import annotations

import numpy as np
import pytest

from infomtl.baselines.answers import AnswerReader, fallback
from infomtl.baselines.questions import TaskQuestions
from infomtl.data.types import TaskData
from infomtl.errors import ConfigError
from infomtl.prompts import BENCHMARK_PROMPTS, Prompt, default_prompt
from infomtl.tasks import TWEETEVAL_TASKS, Task, TaskKind

OFFENSIVE = TWEETEVAL_TASKS["offensive"]
MULTI = Task("tags", TaskKind.MULTILABEL, labels=("ironic", "not ironic", "sad"))
REG = Task("vad", TaskKind.REGRESSION, targets=("V", "A"))


def reader(task: Task, answers: tuple[str, ...] = (), default=None, scale=None) -> AnswerReader:
    default = np.asarray(0) if default is None else np.asarray(default)
    return AnswerReader(task, answers or task.labels, default, scale)


@pytest.mark.parametrize("reply, label", [
    ("offensive", "offensive"),
    ("Not offensive.", "not-offensive"),  # the longest answer at the earliest position
    ("NOT-OFFENSIVE", "not-offensive"),  # case and '-' / ' ' / '_' between words do not matter
    ("not_offensive", "not-offensive"),
    ("It is offensive, not not offensive", "offensive"),  # the earliest appearance wins
    ("The answer: not   offensive", "not-offensive"),
])
def test_the_first_allowed_answer_is_the_label(reply: str, label: str) -> None:
    r = reader(OFFENSIVE, ("not offensive", "offensive"))
    assert OFFENSIVE.labels[int(r.read(reply))] == label


@pytest.mark.parametrize("reply", ["inoffensive", "offensively rude", "", "no idea", "offensive_ness"])
def test_answers_inside_longer_words_do_not_count(reply: str) -> None:
    assert reader(OFFENSIVE, ("not offensive", "offensive")).read(reply) is None


def test_invalid_replies_get_the_fallback_and_are_counted() -> None:
    r = reader(TWEETEVAL_TASKS["sentiment"], default=2)
    pred, invalid = r.predict(["negative", "what?", "Neutral!", "", "positive"])
    assert pred.tolist() == [0, 2, 1, 2, 2] and invalid == 2


def test_the_fallback_is_the_training_majority() -> None:
    task = TWEETEVAL_TASKS["sentiment"]
    train = TaskData(task, "train", ["t"] * 6, np.array([2, 1, 1, 2, 0, 0]))
    assert int(fallback(task, train)) == 0  # a tie of three: the lowest label id
    train = TaskData(task, "train", ["t"] * 5, np.array([2, 1, 1, 2, 2]))
    assert int(fallback(task, train)) == 2
    multi = TaskData(MULTI, "train", ["t"] * 4, np.array([[1, 0, 1], [1, 0, 0], [1, 1, 1], [0, 0, 0]]))
    assert fallback(MULTI, multi).tolist() == [1.0, 0.0, 0.0]  # positive in more than half: 3/4, 1/4, 2/4
    reg = TaskData(REG, "train", ["t"] * 2, np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert fallback(REG, reg).tolist() == [2.0, 4.0]


def test_multilabel_replies_are_every_answer_that_appears() -> None:
    r = reader(MULTI)
    assert r.read("sad, ironic").tolist() == [1, 0, 1]
    assert r.read("Not ironic").tolist() == [0, 1, 0]  # "ironic" inside "not ironic" is not counted again
    assert r.read("ironic and not ironic").tolist() == [1, 1, 0]
    assert r.read("None.").tolist() == [0, 0, 0]  # the empty set, a valid answer
    assert r.read("I am not sure") is None


def test_regression_replies_are_the_first_numbers_clipped_to_the_scale() -> None:
    r = reader(REG, scale=(1.0, 5.0))
    assert r.read("V: 3.5, A: 2").tolist() == [3.5, 2.0]
    assert r.read("7 and -1, then 4").tolist() == [5.0, 1.0]
    assert r.read("about 3") is None  # one number for two outputs
    one = reader(Task("score", TaskKind.REGRESSION), scale=(0.0, 1.0))
    assert one.read("0.75 (fairly intense)").tolist() == [0.75]
    assert one.read(".5").tolist() == [0.5]


def test_questions_carry_the_description_instruction_rule_and_row() -> None:
    task = TWEETEVAL_TASKS["stance"]
    part = TaskData(task, "test", ["we must act now"], np.array([2]), groups=["climate"])
    asked = TaskQuestions.build(task, BENCHMARK_PROMPTS["tweeteval"]["stance"], part)
    (messages,) = asked.messages(part)
    assert messages == [{"role": "user", "content":
                         "Stance detection in tweets (SemEval-2016 Task 6): the author's position towards a target.\n"
                         "Is the author of the tweet in favor of the target, against it, or neither (none)?\n"
                         "Answer with exactly one of: none, against, favor.\n\n"
                         "Target: Climate Change is a Real Concern\nTweet: we must act now"}]


def test_the_answer_rule_follows_the_task_kind() -> None:
    train = TaskData(REG, "train", ["a", "b"], np.array([[1.2, 2.0], [4.6, 3.0]]))
    asked = TaskQuestions.build(REG, default_prompt(REG), train)
    assert asked.scale == (pytest.approx(1.2), pytest.approx(4.6))  # the training range without a scale
    assert asked.rule() == "Answer with 2 numbers from 1.2 to 4.6, for V, A in that order, separated by commas."
    multi = TaskQuestions.build(MULTI, Prompt("d", "i", answers=("irony", "no irony", "sadness")),
                                TaskData(MULTI, "train", ["a"], np.zeros((1, 3))))
    assert multi.rule() == ("Answer with every label that applies, as a comma-separated list of: "
                            "irony, no irony, sadness; or none if none applies.")


def test_every_built_in_prompt_fits_its_task() -> None:
    from infomtl.data.affecteval import AFFECTEVAL_TASKS, GOEMOTIONS_MULTILABEL_TASK
    from infomtl.data.synthetic import SYNTHETIC_TASKS

    tasks = {"tweeteval": TWEETEVAL_TASKS, "affecteval": AFFECTEVAL_TASKS,
             "synthetic": {t.name: t for t in SYNTHETIC_TASKS}}
    for benchmark, prompts in BENCHMARK_PROMPTS.items():
        assert set(prompts) == set(tasks[benchmark]), benchmark
        for name, prompt in prompts.items():
            prompt.check(tasks[benchmark][name])
    BENCHMARK_PROMPTS["affecteval"]["goemotions"].check(GOEMOTIONS_MULTILABEL_TASK)


@pytest.mark.parametrize("prompt, message", [
    (Prompt("d", "i", answers=("a",)), "1 answers for 2 labels"),
    (Prompt("d", "i", answers=("Not offensive", "not-offensive")), "are the same answer"),
    (Prompt("d", "i", template="Tweet: {tweet}"), "must show {text}"),
    (Prompt("d", "i", template="no text here"), "must show {text}"),
])
def test_a_prompt_that_cannot_serve_its_task_is_refused(prompt: Prompt, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prompt.check(OFFENSIVE)


def test_a_template_showing_a_missing_pair_is_a_one_line_error() -> None:
    part = TaskData(OFFENSIVE, "val", ["x"], np.array([0]))
    asked = TaskQuestions.build(OFFENSIVE, Prompt("d", "i", template="{text} / {pair}"), part)
    with pytest.raises(ConfigError, match=r"shows \{pair\}, but the val rows have no text pair"):
        asked.messages(part)
