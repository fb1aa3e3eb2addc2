"""The zero-shot LLM baseline's client against a chat-completions server with a fixed latency.

Runs ``infomtl baseline llm`` on the six TweetEval tasks (the first ROWS test rows of each)
against the test suite's server on 127.0.0.1 (``tests/llm_fakes.py``), which answers every
request after LATENCY seconds, at several ``--concurrency`` values; then once more with the
answer cache of the first run (nothing asked). Prints the wall time of each run, the
requests the server received, and the time the latency alone would take at that
concurrency (questions × latency / concurrency)::

    INFOMTL_DATA=../shared/data python benchmarks/llm_client.py [ROWS] [LATENCY]
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from infomtl.cli import main  # noqa: E402
from llm_fakes import ChatStub, Reply, chat_server, completion  # noqa: E402


def run(url: str, out: Path, rows: int, concurrency: int, cache: Path | None = None) -> float:
    args = ["baseline", "llm", "--model", "stub", "--base-url", url, "--splits", "test", "--max-eval-examples",
            str(rows), "--concurrency", str(concurrency), "--output-dir", str(out), "--no-progress"]
    if cache is not None:
        args += ["--cache-dir", str(cache)]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["-q", *args]) == 0
    return time.perf_counter() - start


def measure(rows: int = 100, latency: float = 0.05) -> None:
    stub = ChatStub(script=lambda n, body: Reply(body=completion("neutral"), delay=latency))
    root = Path(tempfile.mkdtemp(prefix="llm-client-"))
    print(f"{rows} test rows per task, 6 tasks, server latency {latency * 1000:.0f} ms")
    print("| concurrency | requests | wall s | latency alone s | wall / latency alone |")
    print("|---:|---:|---:|---:|---:|")
    with chat_server(stub):
        first = None
        for concurrency in (1, 8, 32):
            before = len(stub.requests)
            out = root / f"c{concurrency}"
            wall = run(stub.url, out, rows, concurrency)
            sent = len(stub.requests) - before
            ideal = sent * latency / concurrency
            first = first or out
            print(f"| {concurrency} | {sent} | {wall:.2f} | {ideal:.2f} | {wall / ideal:.2f} |")
        before = len(stub.requests)
        wall = run(stub.url, root / "cached", rows, 8, cache=first / "answers")
        print(f"| 8, all cached | {len(stub.requests) - before} | {wall:.2f} | 0 | - |")


if __name__ == "__main__":
    measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100, float(sys.argv[2]) if len(sys.argv) > 2 else 0.05)
