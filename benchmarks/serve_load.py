"""Load test of ``infomtl serve``: batched serving against the one-request-at-a-time server.

    python benchmarks/serve_load.py --export EXPORT             # 2,000 requests, 32 clients, both modes
    python benchmarks/serve_load.py --build runs/serve-load     # first trains and exports a MiniLM model
    python benchmarks/serve_load.py --export EXPORT --requests 400 --json out.json

Per mode, a ``python -m infomtl serve EXPORT --port 0`` on loopback (nothing else is
contacted), all started at once, then:

1. warm-up: ``--concurrency`` requests, not counted;
2. the server's RSS (resident set size, psutil) and CPU time before the load;
3. ``--requests`` POST /predict requests (``--texts-per-request`` TweetEval test tweets
   each, from a pool of ``--pool`` distinct tweets) sent by ``--concurrency`` clients, each
   a thread with one keep-alive connection sending its next request once the last one is
   answered. The requests go in ``--rounds`` shares, the modes taking turns (in
   alternating order), so that a change in what else runs on a shared machine reaches
   every mode alike; a mode stops after ``--time-limit`` seconds of load whatever is left;
4. throughput (answered requests per second of load, and texts per second), latency
   p50/p99 (from sending a request to reading its answer), answers by HTTP status, the
   server's CPU milliseconds per request (all its threads; robust to a busy machine), the
   RSS after the load, its peak and its value at each quarter (sampled every 0.2 s), the
   server's ``GET /stats`` (batches, their mean size) and its exit status after SIGTERM.

The modes: ``batched`` (the defaults: ``--max-batch 64 --batch-wait-ms 5``) and ``single``
(``--max-batch 1 --batch-wait-ms 0``: one request per predict call, the server before
batching); ``no-token-budget`` (batched, one forward pass per 64 texts of a batch
whatever their lengths) shows what ``--max-tokens`` saves, ``token-budget-512`` (batched,
passes of at most 512 tokens, the default before 2048) what the larger budget gains. Every 200 answer of the
batched run is compared with ``Predictor.predict`` on the same texts in this process
(same labels; the largest probability difference is printed). Target: batched ≥ 3× the
single throughput with no 5xx answer and the RSS after the load within 10% (plus 64 MiB)
of the RSS before; PASS/FAIL is printed.

The servers run with ``OMP_NUM_THREADS=--server-threads`` (default 1: on 2 cores the
other one runs the event loop and these clients). Numbers depend on the machine and on
what else runs on it; compare the modes of one run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

MODES = {"batched": [], "single": ["--max-batch", "1", "--batch-wait-ms", "0"],
         "no-token-budget": ["--max-tokens", "1000000"], "token-budget-512": ["--max-tokens", "512"]}
MIB = 1024 * 1024


@dataclass
class Answer:
    status: int
    seconds: float
    body: Any


@dataclass
class Served:
    """A ``python -m infomtl serve`` subprocess on a free loopback port."""

    proc: subprocess.Popen
    host: str
    port: int
    log: Path
    rss_samples: list[int] = field(default_factory=list)

    @classmethod
    def start(cls, model: Path, flags: list[str], log: Path, threads: int, timeout: float = 300) -> Served:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   TOKENIZERS_PARALLELISM="false")
        out = log.open("w")
        proc = subprocess.Popen([sys.executable, "-m", "infomtl", "serve", str(model), "--port", "0",
                                 "--no-access-log", *flags], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with {proc.returncode}:\n{log.read_text()}")
            found = re.search(r"on http://(127\.0\.0\.1):(\d+)$", log.read_text(), re.M)
            if found:
                served = cls(proc, found.group(1), int(found.group(2)), log)
                try:
                    if served.get("/health") == (200, {"status": "ok"}):
                        return served
                except OSError:
                    pass
            time.sleep(0.2)
        proc.kill()
        raise SystemExit(f"the server did not start within {timeout:.0f} s:\n{log.read_text()}")

    def get(self, path: str) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process so far (all its threads)."""
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def send_all(host: str, port: int, bodies: list[bytes], concurrency: int, time_limit: float) -> list[Answer | None]:
    """POST every body to /predict from ``concurrency`` keep-alive clients; ``None`` for a
    request not sent before ``time_limit`` seconds had passed."""
    answers: list[Answer | None] = [None] * len(bodies)
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()
    stop_at = time.perf_counter() + time_limit
    headers = {"Content-Type": "application/json"}

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=max(60.0, time_limit))
        try:
            while time.perf_counter() < stop_at:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                start = time.perf_counter()
                try:
                    conn.request("POST", "/predict", body=bodies[i], headers=headers)
                    resp = conn.getresponse()
                    raw = resp.read()
                    answers[i] = Answer(resp.status, time.perf_counter() - start, json.loads(raw))
                    if resp.will_close:
                        conn.close()
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    answers[i] = Answer(0, time.perf_counter() - start, {"error": repr(exc)})
                    conn.close()
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    return answers


def quarters(samples: list[int]) -> list[int]:
    """The samples at 25, 50, 75 and 100% of the load (growth that goes on is a leak)."""
    if not samples:
        return []
    return [samples[max(0, round(len(samples) * q) - 1)] for q in (0.25, 0.5, 0.75, 1.0)]


def request_texts(pool: list[str], requests: int, per_request: int) -> list[list[str]]:
    """Request ``i`` holds ``per_request`` consecutive tweets of the pool from ``i * per_request`` on."""
    return [[pool[(i * per_request + k) % len(pool)] for k in range(per_request)] for i in range(requests)]


class ModeRun:
    """One mode's server under load, in rounds: :meth:`round` sends requests ``[start, end)``;
    :meth:`finish` stops the server and sums up."""

    def __init__(self, model: Path, flags: list[str], texts: list[list[str]], concurrency: int,
                 threads: int, log: Path) -> None:
        self.flags, self.texts, self.concurrency = flags, texts, concurrency
        self.served = Served.start(model, flags, log, threads)
        warm = [json.dumps({"texts": t}).encode() for t in texts[:concurrency]]
        send_all(self.served.host, self.served.port, warm, concurrency, 300)
        self.bodies = [json.dumps({"texts": t}).encode() for t in texts]
        self.answers: list[Answer | None] = [None] * len(texts)
        self.wall = self.client_cpu = 0.0
        self.rss_before = self.served.rss()
        self.stats_before = self.served.get("/stats")[1]
        self.cpu_before = self.served.cpu_seconds()
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._done.wait(0.2):
            self.served.rss_samples.append(self.served.rss())

    def round(self, start: int, end: int, time_left: float) -> None:
        began, cpu = time.perf_counter(), time.process_time()
        got = send_all(self.served.host, self.served.port, self.bodies[start:end], self.concurrency,
                       max(0.0, time_left - self.wall))
        self.wall += time.perf_counter() - began
        self.client_cpu += time.process_time() - cpu
        self.answers[start:end] = got

    def finish(self) -> dict[str, Any]:
        self._done.set()
        self._sampler.join()
        rss_after = self.served.rss()
        cpu = self.served.cpu_seconds() - self.cpu_before
        stats = self.served.get("/stats")[1]
        exit_status = self.served.stop()
        sent = [a for a in self.answers if a is not None]
        ok = [a for a in sent if a.status == 200]
        by_status: dict[str, int] = {}
        for a in sent:
            by_status[str(a.status)] = by_status.get(str(a.status), 0) + 1
        latencies = np.array([a.seconds for a in sent]) * 1000 if sent else np.zeros(1)
        batches = stats["batches"] - self.stats_before["batches"]
        answered_texts = stats["texts"] - self.stats_before["texts"]
        ok_texts = sum(len(self.texts[i]) for i, a in enumerate(self.answers) if a and a.status == 200)
        wall = max(self.wall, 1e-9)
        return {
            "flags": " ".join(self.flags) or "(defaults)",
            "requests_sent": len(sent),
            "requests_not_sent": len(self.answers) - len(sent),
            "wall_s": round(self.wall, 2),
            "requests_per_s": round(len(ok) / wall, 2),
            "texts_per_s": round(ok_texts / wall, 2),
            "server_cpu_ms_per_request": round(1000 * cpu / max(1, len(sent)), 2),
            "client_cpu_ms_per_request": round(1000 * self.client_cpu / max(1, len(sent)), 2),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
            "by_status": by_status,
            "server_errors": sum(n for s, n in by_status.items() if s == "0" or s.startswith("5")),
            "batches": batches,
            "mean_batch_texts": round(answered_texts / batches, 2) if batches else 0.0,
            "largest_batch": stats["largest_batch"],
            "forward_busy_share": round((stats["busy_ms"] - self.stats_before["busy_ms"]) / 1000 / wall, 3),
            "rss_before_mib": round(self.rss_before / MIB, 1),
            "rss_after_mib": round(rss_after / MIB, 1),
            "rss_peak_mib": round(max(self.served.rss_samples + [rss_after]) / MIB, 1),
            "rss_by_quarter_mib": [round(q / MIB, 1) for q in quarters(self.served.rss_samples)],
            "exit_status_after_sigterm": exit_status,
        }


def run_modes(model: Path, modes: list[str], texts: list[list[str]], concurrency: int, rounds: int,
              time_limit: float, threads: int, logs: Path) -> dict[str, tuple[dict[str, Any], list[Answer | None]]]:
    """Every mode's server started at once and loaded in turn, ``rounds`` times a share of the
    requests (the order of the modes alternating), so that a change in what else runs on the
    machine reaches every mode alike; each mode's summary and answers."""
    runs = {m: ModeRun(model, MODES[m], texts, concurrency, threads, logs / f"serve-load-{m}.log") for m in modes}
    try:
        edges = np.linspace(0, len(texts), rounds + 1).astype(int)
        for r in range(rounds):
            for mode in modes if r % 2 == 0 else modes[::-1]:
                print(f"  round {r + 1}/{rounds}: {mode}", flush=True)
                runs[mode].round(int(edges[r]), int(edges[r + 1]), time_limit)
    finally:
        summaries = {m: run.finish() for m, run in runs.items()}
    return {m: (summaries[m], runs[m].answers) for m in modes}


def compare(model: Path, texts: list[list[str]], answers: list[Answer | None], precision: str = "auto"
            ) -> dict[str, Any]:
    """Every 200 answer against ``Predictor.predict`` on the same texts, in this process, at the
    servers' ``precision`` (under bf16 the two agree to bf16's rounding only: batches of other
    shapes round differently)."""
    import infomtl

    predictor = infomtl.load(model, precision=precision)
    cache: dict[tuple[str, ...], list[dict]] = {}
    checked = mismatched = 0
    worst = 0.0
    for request, answer in zip(texts, answers, strict=True):
        if answer is None or answer.status != 200:
            continue
        key = tuple(request)
        if key not in cache:
            cache[key] = predictor.predict(request)
        for got, expected in zip(answer.body["predictions"], cache[key], strict=True):
            for task, exp in expected.items():
                if got[task].get("label") != exp.get("label") or got[task].get("labels") != exp.get("labels"):
                    mismatched += 1
                for name, p in exp.get("probabilities", {}).items():
                    worst = max(worst, abs(got[task]["probabilities"][name] - p))
        checked += 1
    return {"answers_checked": checked, "label_mismatches": mismatched, "max_probability_diff": worst}


def tweets(data_dir: Path | None, pool: int) -> list[str]:
    """``pool`` distinct TweetEval sentiment test tweets (the first ones, in file order)."""
    root = data_dir or (Path(os.environ["INFOMTL_DATA"]) if os.environ.get("INFOMTL_DATA") else None)
    path = root / "tweeteval" / "sentiment" / "test_text.txt" if root else None
    if path is None or not path.is_file():
        raise SystemExit("TweetEval data not found: pass --data-dir or set INFOMTL_DATA")
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            seen.setdefault(line.strip(), None)
        if len(seen) == pool:
            break
    return list(seen)


def build(folder: Path, data_dir: Path | None) -> Path:
    """Train a small MiniLM fast-mode model (TweetEval emotion + irony) and export it,
    unless ``folder/export`` already exists; the commands are printed."""
    export = folder / "export"
    if (export / "infomtl.json").is_file():
        return export
    data = ["--data-dir", str(data_dir)] if data_dir else []
    commands = [
        ["train", "--backbone", "minilm", "--freeze-backbone", "--lr", "1e-3", "--tasks", "emotion,irony",
         "--max-train-examples", "400", "--max-eval-examples", "200", "--epochs", "2", "--no-progress",
         "--output-dir", str(folder / "run"), *data],
        ["export", str(folder / "run"), str(export)],
    ]
    for command in commands:
        print("$ infomtl " + " ".join(command), flush=True)
        subprocess.run([sys.executable, "-m", "infomtl", *command], check=True)
    return export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", type=Path, help="run or export folder to serve")
    source.add_argument("--build", type=Path, metavar="DIR", help="train and export a MiniLM model into DIR first")
    parser.add_argument("--data-dir", type=Path, default=None, help="benchmark data (default: $INFOMTL_DATA)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--pool", type=int, default=1000, help="distinct tweets the requests cycle through")
    parser.add_argument("--rounds", type=int, default=4, help="the modes take turns this many times")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds of load per mode, at most")
    parser.add_argument("--server-threads", type=int, default=1)
    parser.add_argument("--modes", default="batched,single", help=f"comma-separated: {', '.join(MODES)}")
    parser.add_argument("--target", type=float, default=3.0, help="batched / single throughput to PASS")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    model = args.export if args.export else build(args.build, args.data_dir)
    texts = request_texts(tweets(args.data_dir, args.pool), args.requests, args.texts_per_request)
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()},
                               "requests": args.requests, "concurrency": args.concurrency,
                               "texts_per_request": args.texts_per_request, "rounds": args.rounds,
                               "server_threads": args.server_threads, "modes": {}}
    modes = args.modes.split(",")
    print(f"== {', '.join(modes)}: {args.requests} requests each from {args.concurrency} clients, "
          f"{args.rounds} rounds", flush=True)
    done = run_modes(model, modes, texts, args.concurrency, args.rounds, args.time_limit,
                     args.server_threads, logs)
    for mode, (summary, answers) in done.items():
        if mode == "batched":
            summary["answers"] = compare(model, texts, answers)
        results["modes"][mode] = summary
        print(mode, json.dumps(summary, indent=1), flush=True)
    results["machine"]["load_average_after"] = os.getloadavg()
    verdict = judge(results, args.target)
    results["verdict"] = verdict
    print(verdict)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


def judge(results: dict[str, Any], target: float) -> str:
    """PASS when batched ≥ ``target`` × single throughput, no 5xx, RSS bounded, answers equal."""
    modes = results["modes"]
    if not {"batched", "single"} <= set(modes):
        return "no verdict (run both modes)"
    b, s = modes["batched"], modes["single"]
    ratio = b["requests_per_s"] / s["requests_per_s"] if s["requests_per_s"] else float("inf")
    bounded = all(m["rss_after_mib"] <= 1.1 * m["rss_before_mib"] + 64 for m in (b, s))
    answers = b.get("answers", {})
    checks = {
        f"batched/single throughput {ratio:.2f}x >= {target:g}x": ratio >= target,
        "no 5xx or failed request": b["server_errors"] == 0 and s["server_errors"] == 0,
        "every request sent within the time limit": b["requests_not_sent"] == 0 and s["requests_not_sent"] == 0,
        "RSS after <= 1.1 x before + 64 MiB": bounded,
        "answers equal to predict (labels)": answers.get("label_mismatches", 1) == 0,
        "exit status 0 after SIGTERM": b["exit_status_after_sigterm"] == 0 and s["exit_status_after_sigterm"] == 0,
    }
    lines = [f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in checks.items()]
    return "\n".join(lines + [f"overall: {'PASS' if all(checks.values()) else 'FAIL'}"])


if __name__ == "__main__":
    sys.exit(main())
