"""Inference throughput: one multi-task model vs T single-task models on the same texts.

* **multi-task**: one ``MultiTaskModel`` (shared encoder, T heads) tokenises the N texts
  once and encodes them once; every head reads the shared representation:
  cost ≈ 1 × encoder.
* **T single-task**: T independent models (each its own copy of the encoder and one
  head), each tokenising and encoding the same N texts, as T deployed single-task
  classifiers would: cost ≈ T × encoder.

Both run in eval mode under ``torch.inference_mode`` with the same batching (texts sorted
by length, ``batch_size`` rows per forward, each batch padded to its longest text), so
the ratio ``(texts/s multi) / (texts/s single)`` isolates what sharing the encoder saves
(ideally ≈ T). Each model gets one untimed warm-up batch. Heads: InfoMTL's Gaussian
heads (the prediction is the mean; their cost is negligible next to the encoder).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time

import numpy as np
import torch
from machine import synchronize

from infomtl.data.encoding import EncodedSplit, collate
from infomtl.methods import Method, resolve_method
from infomtl.modeling.backbones import load_backbone
from infomtl.modeling.model import MultiTaskModel, TaskHeads
from infomtl.tasks import Task


def _predict_all(model: MultiTaskModel, tokenizer: object, texts: list[str], num_heads: int,
                 max_length: int, batch_size: int, device: torch.device,
                 autocast: torch.dtype | None) -> int:
    """Tokenise ``texts``, encode them in length-sorted batches, run every head; returns
    the real tokens encoded."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    types = enc.get("token_type_ids")
    split = EncodedSplit(
        [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]],
        None if types is None else [np.asarray(x, dtype=np.int64) for x in types],
        np.zeros(len(texts), dtype=np.int64),
    )
    lengths = split.lengths
    order = np.argsort(lengths, kind="stable")
    pad_id = int(tokenizer.pad_token_id or 0)
    amp = (torch.autocast(device.type, dtype=autocast) if autocast is not None
           else contextlib.nullcontext())
    outputs = []
    with torch.inference_mode(), amp:
        for start in range(0, len(texts), batch_size):
            batch = collate([split], [order[start : start + batch_size]], pad_id)
            rows = torch.arange(len(batch))
            batch = dataclasses.replace(batch, rows={t: rows for t in range(num_heads)}).to(device)
            out = model(batch, views=1)
            outputs.append([out.heads[t].mean for t in range(num_heads)])
    synchronize(device)
    return int(lengths.sum())


def measure_inference(
    backbone: str, pooling: str, max_length: int, tasks: list[Task], texts: list[str],
    batch_size: int, device: torch.device, autocast: torch.dtype | None, seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Texts/s, real tokens/s and seconds of the multi-task model and of T single-task
    models over ``texts`` (see the module doc)."""
    torch.manual_seed(seed)
    loaded = load_backbone(backbone, pooling, max_length)
    method = Method(resolve_method("infomtl", None, {}), tasks, loaded.hidden_size, [1] * len(tasks))
    decoder = method.build_decoder()
    multi = MultiTaskModel(loaded.encoder, decoder, pooling).to(device).eval()
    singles = [
        MultiTaskModel(copy.deepcopy(loaded.encoder), TaskHeads([copy.deepcopy(decoder.heads[t])]),
                       pooling).to(device).eval()
        for t in range(len(tasks))
    ]
    tok = loaded.tokenizer
    warm = texts[: min(len(texts), batch_size)]
    for model, heads in [(multi, len(tasks)), *((m, 1) for m in singles)]:
        _predict_all(model, tok, warm, heads, max_length, batch_size, device, autocast)

    def run(models: list[tuple[MultiTaskModel, int]]) -> tuple[float, int]:
        synchronize(device)
        start = time.perf_counter()
        tokens = sum(_predict_all(m, tok, texts, h, max_length, batch_size, device, autocast)
                     for m, h in models)
        return time.perf_counter() - start, tokens // len(models)

    results = {}
    for name, models in (("multi-task", [(multi, len(tasks))]), ("single-task", [(m, 1) for m in singles])):
        seconds, tokens = run(models)
        results[name] = {
            "texts_s": len(texts) / seconds, "tokens_s": tokens / seconds, "seconds": seconds,
            "encoder_passes": len(models), "texts": len(texts),
        }
    return results
