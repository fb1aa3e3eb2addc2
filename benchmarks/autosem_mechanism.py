"""AutoSeM's task bandit in real training: does Thompson sampling draw a useless auxiliary task less?

A planted control: beside the primary task (TweetEval stance) and two real auxiliary tasks
(emotion, irony), the run trains ``irony-shuffled``, a task folder holding irony's texts with
their labels permuted at random (seeded), so it carries no signal that could help stance.
Each run trains MiniLM in the fast mode (frozen features, a shared MLP; the README's
small-run settings) with ``--regime autosem --primary-task stance``: each bandit round draws a
task by Beta-Bernoulli Thompson sampling, trains ``--eval-every`` steps of it, and rewards the
task when the primary's score on a fixed validation subset improved (METHODS.md, "AutoSeM").
The script reads each epoch's ``autosem`` entry of ``log.jsonl`` and prints, per seed, the
share of steps each task got over the run and each arm's posterior mean at the end::

    INFOMTL_DATA=../shared/data python benchmarks/autosem_mechanism.py --seeds 0,1,2

Target (PASS/FAIL): in every seed the shuffled task gets the fewest steps of the three
auxiliary tasks. A uniform draw would give every task 25 % of the steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TASKS = ("stance", "emotion", "irony", "irony-shuffled")
RUN = ["--backbone", "minilm", "--method", "ew", "--freeze-backbone", "--lr", "1e-3", "--max-length", "128",
       "--regime", "autosem", "--primary-task", "stance", "--epochs", "6", "--patience", "0", "--batch-size", "32"]


def write_shuffled_irony(source: Path, target: Path, seed: int = 0) -> Path:
    """Irony's splits as a task folder with every split's labels permuted (the texts kept)."""
    names = [line.split("\t")[1] for line in (source / "mapping.txt").read_text(encoding="utf-8").splitlines()
             if line.strip()]
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "test"):
        texts = (source / f"{split}_text.txt").read_text(encoding="utf-8").split("\n")
        labels = (source / f"{split}_labels.txt").read_text(encoding="utf-8").split()
        texts = texts[: len(labels)]
        shuffled = rng.permutation(np.asarray(labels))
        with open(target / f"{split}.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps({"text": t, "label": names[int(y)]}, ensure_ascii=False) + "\n"
                           for t, y in zip(texts, shuffled, strict=True))
    (target / "task.yaml").write_text(
        "kind: classification\nlabels: [" + ", ".join(names) + "]\nmetrics: [macro_f1]\n", encoding="utf-8")
    return target


def bandit_summary(log: Path) -> tuple[dict[str, int], dict[str, float], int, int]:
    """Steps per task over the run, the arms' posterior means after the last epoch, rounds, rewarded."""
    steps = dict.fromkeys(TASKS, 0)
    means: dict[str, float] = {}
    rounds = rewarded = 0
    for line in log.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)["autosem"]
        for task, n in entry["draws"].items():
            steps[task] += int(n)
        means = {task: arm["mean"] for task, arm in entry["arms"].items()}
        rounds += entry["rounds"]
        rewarded += entry["rewarded"]
    return steps, means, rounds, rewarded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("INFOMTL_DATA"), help="default $INFOMTL_DATA")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--eval-every", type=int, default=5, help="steps of one bandit round")
    parser.add_argument("--eval-rows", type=int, default=294, help="validation rows of the reward (stance has 294)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds a run may take")
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("give --data-dir or set INFOMTL_DATA")
    data_dir = Path(args.data_dir)
    ok = True
    print("| seed | " + " | ".join(f"{t} steps" for t in TASKS) + " | " + " | ".join(f"{t} arm" for t in TASKS)
          + " | rounds (rewarded) | stance test | target |")
    print("|---:|" + "---:|" * (2 * len(TASKS) + 2) + "---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_shuffled_irony(data_dir / "tweeteval" / "irony", Path(tmp) / "irony-shuffled")
        for seed in [int(s) for s in args.seeds.split(",")]:
            out = Path(tmp) / f"run-{seed}"
            cmd = [sys.executable, "-m", "infomtl", "train", *RUN, "--data-dir", str(data_dir),
                   "--tasks", "stance,emotion,irony,irony-shuffled", "--task-dirs", str(folder),
                   "--autosem-eval-every", str(args.eval_every), "--autosem-eval-rows", str(args.eval_rows),
                   "--seed", str(seed), "--output-dir", str(out), "--no-progress"]
            if seed == 0:
                print("<!-- $ infomtl train " + " ".join(cmd[4:]) + " -->", flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            if proc.returncode != 0:
                print(proc.stderr[-2000:])
                print(f"FAIL: seed {seed} exited with {proc.returncode}")
                return 1
            steps, means, rounds, rewarded = bandit_summary(out / "log.jsonl")
            total = sum(steps.values())
            stance = json.loads((out / "results.json").read_text(encoding="utf-8"))["test"]["scores"]["stance"]
            fewest = steps["irony-shuffled"] < min(steps["emotion"], steps["irony"])
            ok &= fewest
            print(f"| {seed} | " + " | ".join(f"{100 * steps[t] / total:.1f} %" for t in TASKS) + " | "
                  + " | ".join(f"{means[t]:.2f}" for t in TASKS)
                  + f" | {rounds} ({rewarded}) | {stance:.2f} | {'PASS' if fewest else 'FAIL'} |", flush=True)
    print(f"\ntarget (the shuffled task gets the fewest steps of the auxiliary tasks in every seed): "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
