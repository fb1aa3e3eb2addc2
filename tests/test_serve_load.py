"""A short load test of ``infomtl serve`` (the long one: ``benchmarks/serve_load.py``).

240 requests of 1 to 4 texts from 12 concurrent keep-alive clients against a real server
process with the default batching: every answer is a 200 equal to ``Predictor.predict`` on
the same texts, requests were batched together, the RSS stays bounded, SIGTERM exits 0.
"""

from __future__ import annotations

import json
import random

import pytest

from benchmark_modules import load_benchmark_module

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

MIB = 1024 * 1024


load = load_benchmark_module("serve_load.py")


def test_many_concurrent_requests_are_batched_and_answered_as_predict_would(tiny_run, tmp_path) -> None:
    rng = random.Random(0)
    words = "the food was great but the trip home took very long please answer soon ok".split()
    requests = [[" ".join(rng.choices(words, k=rng.randint(1, 40))) for _ in range(rng.randint(1, 4))]
                for _ in range(240)]
    bodies = [json.dumps({"texts": texts}).encode() for texts in requests]
    # fp32 as this process's predictors: the server reads the machine's CPU flags, not conftest's AVX2 ones
    served = load.Served.start(tiny_run, ["--precision", "fp32"], tmp_path / "serve.log", threads=1, timeout=120)
    try:
        load.send_all(served.host, served.port, bodies[:12], 12, time_limit=60)  # warm-up
        rss_before = served.rss()
        answers = load.send_all(served.host, served.port, bodies, 12, time_limit=120)
        rss_after = served.rss()
        stats = served.get("/stats")[1]
    finally:
        exit_status = served.stop()
    assert [a.status for a in answers] == [200] * len(requests)
    checked = load.compare(tiny_run, requests, answers, precision="fp32")
    assert checked["answers_checked"] == len(requests) and checked["label_mismatches"] == 0
    assert checked["max_probability_diff"] <= 1e-6
    assert stats["requests"] == len(requests) + 12 and stats["refused"] == stats["timed_out"] == 0
    assert stats["batches"] < stats["requests"] / 2  # concurrent requests shared forward passes
    assert rss_after <= rss_before + 64 * MIB
    assert exit_status == 0
