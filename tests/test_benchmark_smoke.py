"""The throughput benchmark: its FLOP count by hand, and a quick end-to-end run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmark_modules import BENCHMARKS, load_benchmark_module
from infomtl.data.encoding import EncodedSplit, collate
from infomtl.modeling.model import MultiTaskModel, TaskHeads

flops = load_benchmark_module("flops.py")


def _two_layer_bert(vocab_size: int = 100) -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    return BertModel(config, add_pooling_layer=False)


def test_non_embedding_parameters_of_a_two_layer_d32_bert_match_the_hand_count() -> None:
    # one layer: Q, K, V and the attention output, each 32·32 + 32 = 1056  -> 4224
    #            attention LayerNorm 2·32 = 64, output LayerNorm 64           ->  128
    #            FFN in 32·64 + 64 = 2112, FFN out 64·32 + 32 = 2080          -> 4192
    #            = 8544 per layer, two layers = 17088 (embeddings excluded)
    for vocab in (100, 5000):
        shape = flops.EncoderShape.of(_two_layer_bert(vocab))
        assert (shape.n_params, shape.n_layers, shape.d_model) == (17088, 2, 32)


def test_training_and_forward_flops_match_the_hand_computed_values() -> None:
    shape = flops.EncoderShape(n_params=17088, n_layers=2, d_model=32)
    calls = [flops.Call(np.array([5, 3]), 5), flops.Call(np.array([7]), 7)]
    # training, per real token: 6N + 12·n_layers·L·d
    #   L = 5: 6·17088 + 12·2·5·32 = 102528 + 3840 = 106368, times 5 + 3 = 8 tokens  -> 850944
    #   L = 7: 102528 + 12·2·7·32 = 102528 + 5376 = 107904, times 7 tokens          -> 755328
    assert flops.train_flops(shape, calls) == 850944 + 755328
    # forward, per real token: 2N + 4·n_layers·L·d
    #   L = 5: 34176 + 1280 = 35456, times 8 -> 283648;  L = 7: 34176 + 1792 = 35968, times 7 -> 251776
    assert flops.forward_flops(shape, calls) == 283648 + 251776
    assert flops.padded_tokens(calls) == 2 * 5 + 1 * 7


@pytest.mark.parametrize(
    ("views", "chunk_tokens", "micro_batches", "packing"),
    [(1, 0, 1, False), (2, 0, 1, False), (2, 30, 1, False), (1, 12, 1, False), (2, 0, 3, False),
     (2, 40, 2, False), (1, 0, 1, True), (2, 0, 1, True), (2, 20, 1, True), (2, 0, 3, True)],
)
def test_predicted_encoder_calls_match_what_the_multi_task_model_runs(
        views, chunk_tokens, micro_batches, packing) -> None:
    encoder = _two_layer_bert()
    model = MultiTaskModel(encoder, TaskHeads([torch.nn.Linear(32, 2)]), "cls", chunk_tokens, packing=packing)
    model.micro_batches = micro_batches  # what the trainer sets from --grad-accumulation
    model.train()
    lengths = [10, 9, 4, 3, 2, 6]
    split = EncodedSplit([np.arange(1, n + 1) for n in lengths], None, np.zeros(len(lengths), dtype=np.int64))
    batch = collate([split], [np.arange(len(lengths))], pad_id=0)
    with flops.EncoderCalls(encoder) as recorder:
        out = model(batch, views=views)
        out.h.sum().backward()  # checkpointed micro-batches recompute here: not recorded
    predicted = flops.mixed_step_calls(np.array(lengths), views, chunk_tokens, micro_batches, packing)
    assert flops.same_calls(recorder.calls(), predicted)
    if chunk_tokens or micro_batches > 1:
        assert len(predicted) > 1  # the case really splits the step
    if packing and micro_batches == 1 and not chunk_tokens:
        # one view: width 12 (10 | 9+3 | 6+4+2, 36 tokens) beats the longest row's 10 (10 | 9 | 6+4 | 3+2, 40);
        # both views (68 real tokens): width 23, 10+10+3 | 9+9+4 | 6+6+4+3+2+2 (69 tokens)
        assert flops.padded_tokens(predicted) == {1: 36, 2: 69}[views] < len(lengths) * 10 * views


def test_quick_benchmark_prints_every_column_and_every_target(data_root, tmp_path) -> None:
    out = tmp_path / "throughput.json"
    env = {**os.environ, "INFOMTL_DATA": str(data_root), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "throughput.py"), "--quick", "--backbone", "tiny", "--json", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    for header in ("examples/s", "real tokens/s", "step ms", "step / EW", "padding %", "model GFLOP/s",
                   "MFU %", "peak RSS MiB"):
        assert header in text, header
    for row in ("| ew ", "| infomtl ", "| vipmtl ", "| uw ", "| pcgrad ", "| naive-ew ", "| naive-infomtl "):
        assert row in text, row
    assert "measured peak:" in text and "torch " in text and "physical cores" in text
    assert "one multi-task model" in text and "6 single-task models" in text
    assert "ours / naive reference:" in text
    targets = [line for line in text.splitlines() if line.strip().startswith(("[PASS]", "[FAIL]"))]
    assert len(targets) == 6, text  # naive InfoMTL, naive EW, InfoMTL/EW, PCGrad/EW, padding, MFU
    assert any("padding ≤ 5%" in line for line in targets), text
    assert "host-side prediction matches for every recorded method" in text
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["methods"]) == {"ew", "infomtl", "vipmtl", "uw", "pcgrad"}
    assert set(report["naive"]) == {"naive-ew", "naive-infomtl"}
    infomtl = report["methods"]["infomtl"]
    assert infomtl["views"] == 2 and infomtl["flops"] > 0 and 0 < infomtl["flops_s"]
    assert report["peak"]["flops_per_s"] > 0
    assert report["inference"]["single-task"]["encoder_passes"] == 6


def test_pcgrad_step_benchmark_prints_every_variant_with_a_verdict(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "pcgrad_step.py"), "--benchmark", "synthetic", "--steps", "1",
         "--warmup", "1", "--threads", "1", "--max-length", "32"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "×" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["ew", "pcgrad split", "pcgrad loop", "pcgrad batched",
                                                             "pcgrad rep"]
    assert rows[0].split("|")[3].strip() == "1.00"
    assert all(row.split("|")[4].strip() in ("PASS", "FAIL") for row in rows[1:])
    assert "load average:" in proc.stdout and "fell back" not in proc.stdout
