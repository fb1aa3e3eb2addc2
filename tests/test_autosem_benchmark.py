"""benchmarks/autosem_mechanism.py: the planted task keeps irony's texts with its labels
permuted, and the bandit summary adds up what the autosem log entries say."""

from __future__ import annotations

import json
from collections import Counter

from benchmark_modules import load_benchmark_module

mechanism = load_benchmark_module("autosem_mechanism.py")


def test_the_shuffled_task_keeps_every_text_and_each_splits_label_counts(data_root, tmp_path) -> None:
    source = data_root / "tweeteval" / "irony"
    folder = mechanism.write_shuffled_irony(source, tmp_path / "irony-shuffled", seed=0)
    names = ["non_irony", "irony"]
    for split in ("train", "val", "test"):
        labels = (source / f"{split}_labels.txt").read_text(encoding="utf-8").split()
        texts = (source / f"{split}_text.txt").read_text(encoding="utf-8").split("\n")[: len(labels)]
        rows = [json.loads(line) for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [r["text"] for r in rows] == texts
        assert Counter(r["label"] for r in rows) == Counter(names[int(y)] for y in labels)
        agree = sum(r["label"] == names[int(y)] for r, y in zip(rows, labels, strict=True)) / len(rows)
        assert agree < 0.7  # permuted: about p² + (1 - p)², not the original labels


def test_bandit_summary_adds_the_epochs_draws_and_keeps_the_last_arms(tmp_path) -> None:
    tasks = mechanism.TASKS
    def entry(draws, mean, rounds, rewarded):
        return {"autosem": {"draws": dict(zip(tasks, draws, strict=True)),
                            "arms": {t: {"alpha": 1.0, "beta": 1.0, "mean": mean} for t in tasks},
                            "rounds": rounds, "rewarded": rewarded}}
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps(entry([10, 5, 5, 0], 0.4, 4, 1)) + "\n"
                   + json.dumps(entry([5, 0, 5, 10], 0.6, 4, 3)) + "\n", encoding="utf-8")
    steps, means, rounds, rewarded = mechanism.bandit_summary(log)
    assert steps == dict(zip(tasks, [15, 5, 10, 10], strict=True))
    assert means == dict.fromkeys(tasks, 0.6) and (rounds, rewarded) == (8, 4)
