"""VIP-MTL's variance normalisation in a results store: per row of the sweep, the tasks'
normalised output variances (the epoch mean of σ²/Σ'_t, from ``log.jsonl``) at the selected
epoch, their spread (max / min over tasks), Σ'_t at the end, and the test Avg.

    python benchmarks/vip_variance.py STORE

(STORE from ``infomtl sweep configs/sweeps/cpu-minilm-vipmtl-variance.yaml --store STORE``.)
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def summarise(store: Path) -> list[dict]:
    plan = json.loads((store / "plan.json").read_text(encoding="utf-8"))
    runs = plan.get("runs", plan)
    rows: dict[str, list[dict]] = defaultdict(list)
    for run_id, meta in runs.items():
        folder = store / "runs" / run_id
        if not (folder / "results.json").is_file():
            continue
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        log = [json.loads(line) for line in (folder / "log.jsonl").read_text(encoding="utf-8").splitlines()]
        best = next((r for r in reversed(log) if r.get("best")), log[-1])
        variances = best["train"].get("output_variance", {})
        sigma = log[-1].get("method", {}).get("vipmtl", {}).get("sigma", {})
        rows[meta["label"]].append({
            "seed": meta.get("seed"), "test_avg": results["test"]["avg"], "variances": variances,
            "spread": max(variances.values()) / min(variances.values()) if variances else None,
            "sigma": sigma,
        })
    return [{"label": label, "runs": sorted(items, key=lambda r: r["seed"])} for label, items in rows.items()]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for row in summarise(Path(argv[1])):
        runs = row["runs"]
        avgs = [r["test_avg"] for r in runs]
        spreads = [r["spread"] for r in runs if r["spread"] is not None]
        spread_of_avgs = statistics.stdev(avgs) if len(avgs) > 1 else 0
        line = f"{row['label']:<32} test Avg {statistics.mean(avgs):6.2f} ± {spread_of_avgs:.2f}"
        if spreads:
            per_seed = ", ".join(f"{s:.2f}" for s in spreads)
            line += f"  spread of σ²/Σ' over tasks {statistics.mean(spreads):6.2f} (per seed: {per_seed})"
        print(line)
        for r in runs:
            if r["variances"]:
                v = ", ".join(f"{k} {x:.3f}" for k, x in r["variances"].items())
                s = ", ".join(f"{k} {x:.4f}" for k, x in r["sigma"].items())
                print(f"    seed {r['seed']}: σ²/Σ' {v}; Σ' {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
