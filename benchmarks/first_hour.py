"""A hold-out check of a new user's first hour: the README's small-run command on tasks it was not tuned on.

The script writes GoEmotions (AffectEval; its single-label rows, 28 classes, never used to
choose a default) as a task folder of a user's own, in the documented ``.jsonl`` format,
then trains it beside the built-in ``tweeteval:emotion`` with the README's small-run
command (the fast mode: frozen MiniLM features, ``--lr 3e-3``, 2,000 training rows per
task, up to 40 epochs with patience 5), on the machine's CPUs, and prints per task the test score of the run's
official metric against the majority-class baseline (every test row given the training
split's most frequent label, scored with the same metric), with the wall time::

    INFOMTL_DATA=../shared/data python benchmarks/first_hour.py
    python benchmarks/first_hour.py --data-dir ../shared/data --train-rows 5000 --timeout 600

Targets (PASS/FAIL): the whole run within ``--budget`` seconds (600: "within 10
minutes"), and every task's test score at least ``--margin`` points (15) above its
majority-class baseline. The feature cache is the user's (``$XDG_CACHE_HOME``): set it to
a fresh folder to time a first run with the feature extraction in it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from infomtl.config import TrainConfig
from infomtl.data.loading import load_data
from infomtl.metrics import score_task, task_score

# the README's small-run command, with the tasks of this check and an output folder
SMALL_RUN = ["--backbone", "minilm", "--method", "infomtl", "--freeze-backbone", "--lr", "3e-3",
             "--max-train-examples", "2000", "--epochs", "40", "--patience", "5"]


def write_goemotions_folder(source: Path, target: Path, train_rows: int, seed: int = 0) -> Path:
    """GoEmotions' single-label rows as a task folder (``train/val/test.jsonl`` with label
    names, and a ``task.yaml``), ``train_rows`` training rows drawn at random (val and test whole)."""
    names = (source / "emotions.txt").read_text(encoding="utf-8").split()
    target.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        rows = []
        for line in (source / f"{split}.tsv").read_text(encoding="utf-8").splitlines():
            text, labels, _ = line.split("\t")
            if "," not in labels and text.strip():
                rows.append({"text": text, "label": names[int(labels)]})
        if split == "train" and len(rows) > train_rows:
            rows = random.Random(seed).sample(rows, train_rows)
        with open(target / f"{split}.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (target / "task.yaml").write_text(
        "kind: classification\nlabels: [" + ", ".join(names) + "]\nmetrics: [macro_f1]\n", encoding="utf-8")
    return target


def majority_scores(config: TrainConfig) -> dict[str, float]:
    """Each task's official test score when every test row gets the training split's most frequent label."""
    data = load_data(config)
    out = {}
    for task in data.tasks:
        train, test = data.splits[task.name]["train"], data.splits[task.name]["test"]
        top = Counter(np.asarray(train.labels).tolist()).most_common(1)[0][0]
        pred = np.full(len(test.labels), top, dtype=np.int64)
        out[task.name] = task_score(task, score_task(task, np.asarray(test.labels), pred))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("INFOMTL_DATA"),
                        help="the benchmark data root (holds tweeteval/ and affecteval/); default $INFOMTL_DATA")
    parser.add_argument("--train-rows", type=int, default=5000, help="GoEmotions training rows in the task folder")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds the run may take (target)")
    parser.add_argument("--margin", type=float, default=15.0, help="points above the majority baseline (target)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="kill the run after this many seconds")
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("give --data-dir or set INFOMTL_DATA")
    data_dir = Path(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_goemotions_folder(data_dir / "affecteval" / "goemotions", Path(tmp) / "goemotions",
                                         args.train_rows)
        out_dir = Path(tmp) / "runs"
        cmd = [sys.executable, "-m", "infomtl", "train", *SMALL_RUN, "--data-dir", str(data_dir),
               "--tasks", "tweeteval:emotion,goemotions", "--task-dirs", str(folder),
               "--output-dir", str(out_dir), "--no-progress"]
        print("$ infomtl train " + " ".join(cmd[4:]), flush=True)
        load = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
            print(f"FAIL: the run exited with {proc.returncode}")
            return 1
        results = json.loads(next(out_dir.rglob("results.json")).read_text(encoding="utf-8"))
        config = TrainConfig(tasks=["tweeteval:emotion", "goemotions"], task_dirs=[str(folder)],
                             data_dir=str(data_dir))
        base = majority_scores(config)
    ok_time = wall <= args.budget
    print(f"\nwall {wall:.0f} s (1-min load average before: {load:.1f} on {os.cpu_count()} CPUs): "
          f"{'PASS' if ok_time else 'FAIL'} (target <= {args.budget:.0f} s)\n")
    print("| task | test score (official metric) | majority-class baseline | margin | target |")
    print("|---|---:|---:|---:|---|")
    ok_all = ok_time
    for name, score in results["test"]["scores"].items():
        margin = score - base[name]
        ok = margin >= args.margin
        ok_all &= ok
        print(f"| {name} | {score:.2f} | {base[name]:.2f} | {margin:+.2f} | "
              f"{'PASS' if ok else 'FAIL'} (>= +{args.margin:.0f}) |")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
