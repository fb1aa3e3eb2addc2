"""How long ``infomtl demo`` takes, per thread count, and how busy the machine was.

Runs ``python -m infomtl demo --threads N --no-progress`` once per ``--threads`` value
(a fresh process each, output in a temporary folder) and prints, per run: the wall
time, the CPU time of the process (user + system: on one thread, about the wall time
the demo takes on an idle core), the 1-minute load average before and after, and
whether the wall time met the target (``--target``, 60 s: the README's demo "about
30 s on 2 CPU cores", with room). A run over ``--timeout`` is killed and reported as
such::

    python benchmarks/demo_time.py --threads 1,2 --timeout 900
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def time_demo(threads: int, timeout: float) -> dict[str, object]:
    """One demo run on ``threads`` threads: wall and CPU seconds, load before and after."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "infomtl", "demo", "--threads", str(threads), "--no-progress",
               "--output-dir", str(Path(tmp) / "demo")]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
        except subprocess.TimeoutExpired:
            status = f"killed after {timeout:.0f} s"
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"threads": threads, "wall_s": wall, "cpu_s": cpu, "load_before": load_before,
            "load_after": os.getloadavg()[0], "status": status}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1", help="comma-separated thread counts (default: 1)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed (default: 900)")
    parser.add_argument("--target", type=float, default=60, help="wall-time target in seconds (default: 60)")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} in this process's affinity mask")
    print("| threads | wall s | CPU s | load before | load after | target | status |")
    print("|--------:|-------:|------:|------------:|-----------:|--------|--------|")
    for n in (int(t) for t in args.threads.split(",")):
        r = time_demo(n, args.timeout)
        verdict = "PASS" if r["status"] == "ok" and r["wall_s"] <= args.target else "FAIL"
        print(f"| {n} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['load_before']:.1f} | {r['load_after']:.1f} "
              f"| {verdict} (<= {args.target:.0f} s) | {r['status']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
