"""Frozen-backbone fast mode: the feature cache and the model above cached features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fakes import on_progress
from infomtl.config import TrainConfig
from infomtl.data import subsample
from infomtl.data.encoding import collate, encode
from infomtl.data.synthetic import synthetic_benchmark
from infomtl.errors import ConfigError
from infomtl.methods import OBJECTIVES
from infomtl.modeling import feature_cache as features
from infomtl.modeling.backbones import load_backbone, pool
from infomtl.modeling.building import uses_features
from infomtl.modeling.model import MultiTaskModel, SharedMLP, TaskHeads

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("tiny", "mean", 32)


@pytest.fixture(scope="module")
def train_split():
    data = synthetic_benchmark()
    task = data.tasks[0]
    return data.splits[task.name]["train"]


def test_extract_equals_the_encoder_row_by_row(tiny, train_split) -> None:
    part = subsample(train_split, count=20, seed=0)
    feats = features.extract(tiny, part)
    split = encode(part, tiny.tokenizer, 32)
    tiny.encoder.eval()
    with torch.no_grad():
        for i in (0, 7, 19):  # each row alone, unpadded
            ids = torch.from_numpy(split.input_ids[i]).unsqueeze(0)
            mask = torch.ones_like(ids)
            expected = pool(tiny.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask, "mean")
            torch.testing.assert_close(feats[i], expected[0], atol=1e-5, rtol=1e-5)


def test_cache_is_read_back_and_keyed_by_what_features_depend_on(tiny, train_split, tmp_path, monkeypatch) -> None:
    part = subsample(train_split, count=30, seed=1)
    cache = features.FeatureCache(tiny, tmp_path, progress=False)
    first = cache.features(part)
    assert cache.path(part).is_file()

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were computed again instead of read from the cache")

    monkeypatch.setattr(features, "extract", no_extraction)
    again = features.FeatureCache(tiny, tmp_path, progress=False).features(part)
    assert torch.equal(first, again)

    other_rows = subsample(train_split, count=30, seed=2)
    assert cache.path(other_rows) != cache.path(part)
    longer = load_backbone("tiny", "mean", 16)
    assert features.backbone_fingerprint(longer) != cache.fingerprint
    cls = load_backbone("tiny", "cls", 32)
    assert features.backbone_fingerprint(cls) != cache.fingerprint
    changed = load_backbone("tiny", "mean", 32)
    with torch.no_grad():
        next(changed.encoder.parameters()).add_(1e-3)
    assert features.backbone_fingerprint(changed) != cache.fingerprint


def test_a_torn_cache_file_is_recomputed(tiny, train_split, tmp_path) -> None:
    part = subsample(train_split, count=10, seed=3)
    cache = features.FeatureCache(tiny, tmp_path, progress=False)
    good = cache.features(part)
    path = cache.path(part)
    path.write_bytes(path.read_bytes()[:50])
    assert torch.equal(cache.features(part), good)


def test_a_corrupted_cache_file_is_detected_by_its_checksum_and_rebuilt(tiny, train_split, tmp_path, caplog) -> None:
    part = subsample(train_split, count=10, seed=6)
    cache = features.FeatureCache(tiny, tmp_path, progress=False)
    good = cache.features(part)
    path = cache.path(part)
    data = bytearray(path.read_bytes())
    data[-7] ^= 0x40  # one bit of one feature: the file still parses, with the right shape
    path.write_bytes(bytes(data))
    with safe_open(str(path), "pt") as fh:
        assert fh.get_tensor("features").shape == good.shape and not torch.equal(fh.get_tensor("features"), good)
    assert not cache.cached(part)
    caplog.clear()
    assert torch.equal(cache.features(part), good)  # recomputed, never the changed values
    assert "corrupt (its checksum does not match); recomputing it" in caplog.text
    assert cache.cached(part) and torch.equal(load_file(str(path))["features"], good)  # and rewritten


def test_a_cache_file_without_a_checksum_is_recomputed(tiny, train_split, tmp_path, caplog) -> None:
    part = subsample(train_split, count=10, seed=7)
    cache = features.FeatureCache(tiny, tmp_path, progress=False)
    good = cache.features(part)
    save_file({"features": torch.zeros_like(good)}, str(cache.path(part)))  # as written before checksums
    assert torch.equal(cache.features(part), good)
    assert "without a checksum" in caplog.text


def test_a_subsample_takes_its_rows_features_by_content(tiny, train_split, tmp_path) -> None:
    cache = features.FeatureCache(tiny, tmp_path, progress=False)
    full = subsample(train_split, count=40, seed=4)
    part = subsample(full, count=12, seed=5)
    split = cache.encoded(full, part)
    assert torch.allclose(split.features, features.extract(tiny, part), atol=1e-5)
    assert np.array_equal(split.labels, part.labels)


def test_model_on_features_equals_model_on_tokens(tiny, train_split) -> None:
    torch.manual_seed(0)
    part = subsample(train_split, count=16, seed=6)
    classes = part.task.num_outputs
    model = MultiTaskModel(
        tiny.encoder, TaskHeads([torch.nn.Linear(12, classes)]), "mean", freeze_encoder=True,
        shared_mlp=SharedMLP(tiny.hidden_size, 12, 0.1),
    ).eval()
    token_batch = collate([encode(part, tiny.tokenizer, 32)], [np.arange(16)], 0)
    feature_batch = collate([_features_split(tiny, part)], [np.arange(16)], 0)
    assert feature_batch.features is not None and feature_batch.input_ids.shape == (16, 0)
    with torch.no_grad():
        a = model(token_batch).heads[0]
        b = model(feature_batch).heads[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _features_split(backbone, part):
    from infomtl.data.encoding import EncodedSplit

    return EncodedSplit([], None, part.labels, features=features.extract(backbone, part))


def test_two_views_differ_only_by_the_mlp_dropout(tiny, train_split) -> None:
    part = subsample(train_split, count=8, seed=7)
    model = MultiTaskModel(
        tiny.encoder, TaskHeads([torch.nn.Linear(12, part.task.num_outputs)]), "mean",
        freeze_encoder=True, shared_mlp=SharedMLP(tiny.hidden_size, 12, 0.5),
    )
    batch = collate([_features_split(tiny, part)], [np.arange(8)], 0)
    model.train()
    out = model(batch, views=2)
    assert out.h.shape == out.h_views.shape == (8, 12)
    assert not torch.allclose(out.h, out.h_views)
    model.eval()
    out = model(batch, views=2)
    torch.testing.assert_close(out.h, out.h_views)


def test_uses_features_only_for_pooled_heads() -> None:
    frozen = TrainConfig(freeze_backbone=True)
    assert uses_features(frozen, OBJECTIVES["infomtl"].token_states)
    assert not uses_features(frozen, OBJECTIVES["textcnn"].token_states)
    assert not uses_features(TrainConfig(), OBJECTIVES["linear"].token_states)


@pytest.mark.parametrize("option, value", [("mlp_width", 0), ("mlp_dropout", 1.0), ("mlp_dropout", -0.1)])
def test_bad_mlp_options_are_refused(option, value) -> None:
    with pytest.raises(ConfigError, match=option.replace("_", "-")):
        TrainConfig(**{option: value}).validate()


def _fast_sweep(tmp_path, methods: str):
    """A fast-mode sweep file of ``methods`` (YAML) on the tiny backbone, and its cache folder."""
    cache = tmp_path / "cache"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "base: {benchmark: synthetic, backbone: tiny, max_length: 32, batch_size: 32, epochs: 1,\n"
        "       max_train_examples: 48, max_eval_examples: 24, lr: 1.0e-3, progress: false,\n"
        f"       freeze_backbone: true, mlp_width: 16, feature_cache: {cache}}}\n"
        f"methods: {methods}\nseeds: [0]\n", encoding="utf-8")
    return cache, sweep


def test_sweep_extracts_features_once_before_its_runs(tmp_path, monkeypatch) -> None:
    from infomtl.experiments.sweep import run_sweep

    cache, sweep = _fast_sweep(tmp_path, "[{method: ew}, {method: infomtl}]")
    calls = []
    real = features.extract
    monkeypatch.setattr(features, "extract", lambda *a, **k: calls.append(a[1].split) or real(*a, **k))
    messages: list[str] = []
    with on_progress(messages.append):
        summary = run_sweep(sweep, tmp_path / "store")
    assert len(summary.finished) == 2 and not summary.failed
    assert sum(m.startswith("features:") for m in messages) == 1
    # the synthetic tasks share their sentences: one file per split serves all three tasks
    # and both runs
    assert sorted(calls) == ["test", "train", "val"]
    assert len(list(cache.glob("*.safetensors"))) == 3


def test_sigterm_during_a_sweeps_feature_extraction_stops_it_there_writing_nothing(tmp_path, monkeypatch) -> None:
    import os
    import signal

    from infomtl.errors import Interrupted
    from infomtl.experiments.sweep import run_sweep

    cache, sweep = _fast_sweep(tmp_path, "[{method: ew}]")
    real = features.extract
    batches: list[int] = []

    def signalled(backbone, data, device, desc, dtype, layers, stop):  # the signal lands after 2 batches
        def counting() -> int | None:
            batches.append(1)
            if len(batches) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return stop()
        return real(backbone, data, device, desc, dtype, layers, stop=counting)

    monkeypatch.setattr(features, "EXTRACT_TOKENS", 64)  # many batches per split
    monkeypatch.setattr(features, "extract", signalled)
    with pytest.raises(Interrupted) as stopped:
        run_sweep(sweep, tmp_path / "store")
    assert stopped.value.signal_name == "SIGTERM" and stopped.value.exit_status == 128 + signal.SIGTERM
    assert "nothing written" in stopped.value.saved and stopped.value.resume.startswith("infomtl sweep ")
    assert len(batches) == 2  # stopped at the next batch, not at the end of the extraction
    assert not list(cache.glob("*.safetensors*"))
    assert not any((tmp_path / "store" / "runs").iterdir())
    monkeypatch.setattr(features, "extract", real)
    summary = run_sweep(sweep, tmp_path / "store")  # the same command again finishes
    assert len(summary.finished) == 1 and len(list(cache.glob("*.safetensors"))) == 3


def test_a_cache_held_by_another_process_too_long_is_a_one_line_error(tiny, train_split, tmp_path,
                                                                     monkeypatch) -> None:
    from filelock import FileLock

    from infomtl.errors import InfomtlError

    part = subsample(train_split, count=10, seed=5)
    cache = features.FeatureCache(tiny, tmp_path, progress=False)
    monkeypatch.setattr(features, "LOCK_TIMEOUT_S", 0.2)
    with FileLock(str(tmp_path / ".lock")):  # another holder of the folder's lock (its own file handle)
        with pytest.raises(InfomtlError, match="held the feature-cache lock for over 0.2 s") as held:
            cache.features(part)
    assert "\n" not in str(held.value)
    assert cache.features(part).shape == (10, tiny.hidden_size)  # released: computed and cached
    assert cache.cached(part)
