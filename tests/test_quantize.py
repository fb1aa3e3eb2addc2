"""Dynamic int8 quantisation of the encoder (``--quantize int8``), bf16 autocast of inference
(``precision``), and ``torch.inference_mode`` in ``predict``."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

import infomtl
from benchmark_modules import load_benchmark_module
from infomtl.cli import main
from infomtl.errors import InfomtlError
from infomtl.inference.export import export_run
from infomtl.inference.quantize import quantize_encoder, quantize_units
from infomtl.inference.units import ModelUnit
from infomtl.modeling.backbones import load_backbone
from infomtl.modeling.model import MultiTaskModel, TaskHeads
from infomtl.modeling.sharing import CrossStitch
from infomtl.precision import inference_precision

pytestmark = pytest.mark.usefixtures("one_thread")

SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = random.Random(0)
    words = "the food was great but the trip home took very long please answer soon i love this awful day".split()
    return [" ".join(rng.choices(words, k=rng.randint(1, 30))) for _ in range(300)]


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    return export_run(tiny_run, tmp_path_factory.mktemp("quantize") / "model")


def _linears(module: nn.Module) -> tuple[int, int]:
    """(float nn.Linear, dynamic int8 Linear) modules under ``module``."""
    mods = list(module.modules())
    return sum(type(m) is nn.Linear for m in mods), sum(isinstance(m, DynamicLinear) for m in mods)


def _max_probability_difference(a: list[dict], b: list[dict], task: str) -> float:
    return max(abs(p - y[task]["probabilities"][name]) for x, y in zip(a, b, strict=True)
               for name, p in x[task]["probabilities"].items())


# -- the mechanism ---------------------------------------------------------------------


def test_a_linear_layer_is_quantised_as_the_module_docstring_computes() -> None:
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -0.5], [0.222, 2.55]]))
        lin.bias.copy_(torch.tensor([0.1, -0.2]))
    head = nn.Linear(2, 2)
    model = MultiTaskModel(nn.Sequential(lin), TaskHeads([head]))
    assert quantize_encoder(model) == 1
    q = model.encoder[0]
    assert isinstance(q, DynamicLinear) and model.decoder.heads[0] is head  # the head stays a float Linear
    # s_W = max|W| / 127.5 = 2.55 / 127.5 = 0.02; W_q = round(W / 0.02) = [[50, -25], [11.1 -> 11, 127.5 -> 127]]
    weight = q.weight()
    assert weight.q_scale() == pytest.approx(0.02)
    assert weight.int_repr().tolist() == [[50, -25], [11, 127]]
    assert torch.allclose(weight.dequantize(), torch.tensor([[1.0, -0.5], [0.22, 2.54]]), atol=1e-6)
    # the input, quantised from its own range [-1, 2] to 127 levels (x86 engines: 7 bits) or 255:
    # s_x = 3 / 127, z_x = round(1 / s_x) = 42; x_q - z_x = round(x / s_x) = [[42, 85], [-42, 21]]
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    levels = 127 if torch.backends.quantized.engine in ("x86", "fbgemm") else 255
    s_x = 3.0 / levels
    x_hat = torch.round(x / s_x) * s_x
    expected = x_hat @ torch.tensor([[1.0, -0.5], [0.22, 2.54]]).T + torch.tensor([0.1, -0.2])
    if levels == 127:  # by hand: 42·s_x·1 − 85·s_x·0.5 + 0.1 = 0.0882; 42·s_x·0.22 + 85·s_x·2.54 − 0.2 = 5.1183
        assert expected[0].tolist() == pytest.approx([0.0882, 5.1183], abs=1e-4)
    with torch.inference_mode():
        assert torch.allclose(q(x), expected, atol=1e-4)


def test_every_linear_of_the_tiny_encoder_becomes_int8_and_the_heads_stay_fp32(tiny_run) -> None:
    plain = infomtl.load(tiny_run)
    int8 = infomtl.load(tiny_run, quantize="int8")
    assert (plain.quantize, int8.quantize) == ("none", "int8")
    # tiny: 2 layers x (query, key, value, attention output, FFN in, FFN out) = 12 Linear layers, no pooler
    assert _linears(plain.units[0].model.encoder) == (12, 0)
    assert _linears(int8.units[0].model.encoder) == (0, 12)
    assert _linears(int8.units[0].model.decoder) == _linears(plain.units[0].model.decoder) == (3, 0)


def test_cross_stitch_copies_of_the_top_layers_are_quantised_too() -> None:
    encoder = load_backbone("tiny").encoder
    sharing = CrossStitch(encoder, num_tasks=3, k=1)
    model = MultiTaskModel(encoder, TaskHeads([nn.Linear(32, 2)] * 3), sharing=sharing)
    # the shared bottom layer's 6 Linear layers, and 3 task copies of the top layer's 6
    assert quantize_encoder(model) == 6 + 3 * 6
    assert _linears(model.encoder)[0] == _linears(sharing.copies)[0] == 0


def test_quantising_shows_no_deprecation_warnings(tiny_run) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infomtl.load(tiny_run, quantize="int8").predict(["the food was great"])
    assert [str(w.message) for w in caught if "quantiz" in str(w.message).lower()] == []


def test_predict_runs_under_inference_mode(tiny_run) -> None:
    predictor = infomtl.load(tiny_run)
    seen: list[bool] = []
    hook = predictor.units[0].model.encoder.register_forward_hook(
        lambda *_: seen.append(torch.is_inference_mode_enabled()))
    try:
        predictor.predict(["the food was great", "this is awful"], batch_size=1)
    finally:
        hook.remove()
    assert seen == [True, True]


# -- what it does to predictions --------------------------------------------------------


def test_int8_probabilities_stay_close_to_fp32(tiny_run, texts) -> None:
    plain, int8 = infomtl.load(tiny_run), infomtl.load(tiny_run, quantize="int8")
    a, b = plain.predict(texts), int8.predict(texts)
    for task in plain.task_names:
        # measured on this run: at most 4e-4; the bound leaves 5x for other CPUs' int8 kernels
        assert _max_probability_difference(a, b, task) < 2e-3, task
        assert all(x[task]["label"] == y[task]["label"] for x, y in zip(a, b, strict=True)), task


def test_int8_labels_agree_on_most_rows_with_heads_that_separate_the_texts(tiny_run, texts) -> None:
    """The tiny run's heads give every text the same label (its random encoder varies little
    between texts: feature std 0.3 % of their size), so both predictors get heads that
    standardise the features first, ``W (h − μ) / σ``: every direction of variation at unit
    scale, and the int8 error with it — the worst case for the labels."""
    plain, int8 = infomtl.load(tiny_run), infomtl.load(tiny_run, quantize="int8")
    unit = plain.units[0]
    enc = unit.tokenizer(texts, padding=True, truncation=True, max_length=unit.max_length, return_tensors="pt")
    with torch.inference_mode():
        h = unit.model.encoder(**enc).last_hidden_state[:, 0]
    mu, sd = h.mean(0), h.std(0)
    torch.manual_seed(0)
    for fp_head, q_head in zip(unit.model.decoder.heads, int8.units[0].model.decoder.heads, strict=True):
        weight = torch.randn_like(fp_head.linear.weight) / h.shape[1] ** 0.5 / sd
        with torch.no_grad():
            fp_head.linear.weight.copy_(weight)
            fp_head.linear.bias.copy_(-(weight @ mu))
        q_head.linear.load_state_dict(fp_head.linear.state_dict())
    a, b = plain.predict(texts), int8.predict(texts)
    for task in plain.tasks:
        labels = [x[task.name]["label"] for x in a]
        assert len(set(labels)) == len(task.labels), task.name  # the heads do separate the texts
        agree = np.mean([x == y[task.name]["label"] for x, y in zip(labels, b, strict=True)])
        assert agree >= 0.75, (task.name, agree)  # measured: 0.82 (topic), 0.92, 0.96


def test_bf16_autocast_stays_close_to_fp32(tiny_run, texts) -> None:
    plain, bf16 = infomtl.load(tiny_run, precision="fp32"), infomtl.load(tiny_run, precision="bf16")
    assert (plain.precision, bf16.precision) == ("fp32", "bf16")
    a, b = plain.predict(texts[:100]), bf16.predict(texts[:100])
    for task in plain.task_names:
        assert _max_probability_difference(a, b, task) < 5e-3, task  # measured: at most 1.2e-3


def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_instructions(tiny_run, tmp_path, monkeypatch) -> None:
    sapphire, avx2 = tmp_path / "sapphire", tmp_path / "avx2"
    sapphire.write_text(SAPPHIRE)
    avx2.write_text(AVX2)
    assert inference_precision("auto", "cpu", sapphire) == "bf16"
    assert inference_precision("auto", "cpu", avx2) == "fp32"
    assert inference_precision("auto", "cpu", tmp_path / "missing") == "fp32"
    assert inference_precision("auto", "cuda", sapphire) == "fp32"
    assert inference_precision("fp32", "cpu", sapphire) == "fp32"
    assert inference_precision("bf16", "cpu", avx2) == "bf16"
    monkeypatch.setattr("infomtl.precision.CPUINFO", sapphire)
    assert infomtl.load(tiny_run).precision == "bf16"
    assert infomtl.load(tiny_run, precision="fp32").precision == "fp32"
    assert infomtl.load(tiny_run, quantize="int8").precision == "fp32"  # the int8 encoder computes in fp32


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"quantize": "int4"}, "quantize must be one of none, int8, got 'int4'"),
    ({"quantize": "int8", "device": "cuda"}, "runs on the CPU only"),
    ({"precision": "fp16"}, "precision must be one of auto, fp32, bf16"),
    ({"quantize": "int8", "precision": "bf16"}, "do not combine"),
])
def test_bad_settings_are_one_line_errors(tiny_run, kwargs, message) -> None:
    with pytest.raises(InfomtlError, match=message) as info:
        infomtl.load(tiny_run, **kwargs)
    assert "\n" not in str(info.value)


def test_a_model_that_is_not_pytorch_is_refused() -> None:
    unit = ModelUnit(model=object(), tokenizer=None, max_length=8, tasks=[], pair_modes={})  # type: ignore[arg-type]
    with pytest.raises(InfomtlError, match="needs a PyTorch model"):
        quantize_units([unit])


# -- the command line -------------------------------------------------------------------------


def test_cli_predict_quantize_int8_end_to_end(exported, texts, tmp_path, capsys) -> None:
    (tmp_path / "in.txt").write_text("\n".join(texts[:20]) + "\n", encoding="utf-8")
    assert main(["predict", str(exported), "--input", str(tmp_path / "in.txt"), "--quantize", "int8"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]  # stdout: the predictions only
    expected = infomtl.load(exported, quantize="int8").predict(texts[:20])
    assert [r["predictions"] for r in rows] == json.loads(json.dumps(expected))
    assert err.count("encoder quantised to int8") == 1
    assert main(["predict", str(exported), "--input", str(tmp_path / "in.txt"), "--quantize", "int8",
                 "--output", str(tmp_path / "out.jsonl")]) == 0
    out, _ = capsys.readouterr()
    assert out.count("encoder quantised to int8 (dynamic, 12 Linear layers") == 1
    assert [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()] == rows


def _exit_status(argv: list[str]) -> int:
    """``infomtl ARGV``'s exit status (argparse exits for a bad flag value)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(("args", "message"), [
    (["--quantize", "int4"], "argument --quantize: invalid choice: 'int4'"),
    (["--precision", "fp16"], "argument --precision: invalid choice: 'fp16'"),
    (["--quantize", "int8", "--precision", "bf16"], "do not combine"),
])
def test_cli_bad_values_are_one_line_exit_2(exported, tmp_path, capsys, args, message) -> None:
    (tmp_path / "in.txt").write_text("the food was great\n", encoding="utf-8")
    assert _exit_status(["predict", str(exported), "--input", str(tmp_path / "in.txt"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_serve_passes_quantize_and_precision(exported, monkeypatch) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    seen: dict = {}
    monkeypatch.setattr("infomtl.cli.inference.serve", lambda path, **kw: seen.update(kw, path=path))
    assert main(["serve", str(exported), "--quantize", "int8", "--precision", "fp32", "--port", "0"]) == 0
    assert (seen["path"], seen["quantize"], seen["precision"]) == (str(exported), "int8", "fp32")


# -- the benchmark (benchmarks/inference_speed.py) -----------------------------------------------


def test_the_benchmarks_reference_path_predicts_what_predict_does(tiny_run, texts) -> None:
    bench = load_benchmark_module("inference_speed.py")
    predictor = infomtl.load(tiny_run, precision="fp32")
    reference, ours = bench.reference_predict(predictor, texts[:70]), predictor.predict(texts[:70], batch_size=16)
    differ, worst = bench.agreement(reference, ours)
    assert differ == 0 and worst < 1e-5  # the same numbers, batched and padded otherwise
    task = predictor.tasks[0]
    assert bench.task_outputs(task, ours).tolist() == [task.labels.index(p[task.name]["label"]) for p in ours]
