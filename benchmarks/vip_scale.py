"""Scale invariance (VIP-MTL §4.6) on the designed synthetic set of ``tests/mechanisms.py``:
scale one regression task's targets by 10 and measure how much the other two tasks' mean
validation score moves, under EW and VIP-MTL (estimated Σ', learned τ_t, w/o VI), seeds 0–2.

    python benchmarks/vip_scale.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mechanisms import TaskSpec, fit, make_tasks  # noqa: E402

SPECS = [TaskSpec("a"), TaskSpec("b", noise=0.3), TaskSpec("r", kind="regression")]
SCALED = [TaskSpec("a"), TaskSpec("b", noise=0.3), TaskSpec("r", kind="regression", scale=10)]
ROWS = {
    "ew": ("ew", {}),
    "vipmtl estimate": ("vipmtl", {"scale_mode": "estimate"}),
    "vipmtl learned": ("vipmtl", {"scale_mode": "learned"}),
    "vipmtl w/o VI": ("vipmtl", {"variance_norm": False}),
}


def main() -> int:
    torch.set_num_threads(1)
    for label, (method, args) in ROWS.items():
        drops = []
        for seed in (0, 1, 2):
            plain = fit(make_tasks(SPECS, seed=seed), method, args, epochs=8, seed=seed).scores()
            scaled = fit(make_tasks(SCALED, seed=seed), method, args, epochs=8, seed=seed).scores()
            drops.append((plain[0] + plain[1] - scaled[0] - scaled[1]) / 2)
        print(f"{label:<16} other tasks' score falls by {statistics.mean(drops):5.1f} "
              f"(per seed: {', '.join(f'{d:.1f}' for d in drops)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
