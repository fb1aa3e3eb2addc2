"""Training on 2 CPU processes (``torchrun``, gloo) equals training on one process with the
same global batch.

How the comparison is made tight: the ``tiny`` encoder's dropout and the head dropout are
switched off in both runs (:func:`fakes.dropout_free`). Then neither run draws a
dropout mask in the encoder, the draws after it (InfoMTL's Gaussian samples) come from
the global random stream in both, and the two runs compute the same numbers up to float
rounding (shards are padded differently; sums run in another order).

1. **Gradients of one step**, compared directly (relative to the largest gradient,
   1e-5), for every model and method parameter: Adam-type optimizers are invariant to a
   constant factor on a parameter's gradient, so trained weights alone would not catch
   e.g. an encoder gradient W times too large. Steps: a planned step (4 rows per
   process), a step of one row (the other process encodes a stand-in row), and a skewed
   step (3/1/2 rows of the tasks, dealt unevenly). Methods: EW; UW (its own task scalars
   s_t, not part of the model); PCGrad (per-task gradients, projected after averaging);
   InfoMTL (InfoNCE and class-balanced KL over the global batch); UW with
   ``grad_accumulation=2`` on each process.
2. **End to end through the CLI** (``infomtl.cli.main``, as ``torchrun -m infomtl train``
   runs it) for EW, UW and PCGrad, 2 epochs of 3 steps: val/test scores and losses in
   ``results.json``, the train losses in ``log.jsonl`` and the best checkpoint's weights.

One ``torchrun`` launch runs all of it (``ddp_worker.py``); about 25 s on 2 cores, plus
the one-process references here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ddp_worker
from fakes import dropout_free
from infomtl.cli import main as cli_main
from infomtl.training import Trainer

REPO = Path(__file__).resolve().parents[1]
GRAD_RTOL = 1e-5


@pytest.fixture(scope="module")
def ddp_out(tmp_path_factory, data_root) -> Path:
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    out = tmp_path_factory.mktemp("ddp")
    env = {
        **os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(REPO / "tests" / "ddp_worker.py"), str(out), str(data_root),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    # only the main process prints the results
    assert proc.stdout.count("run folder:") == len(ddp_worker.CLI_METHODS), proc.stdout[-3000:]
    return out


@pytest.fixture
def one_process(monkeypatch, one_thread):
    import infomtl.modeling.backbones as backbones

    monkeypatch.setattr(backbones, "_tiny", dropout_free(backbones._tiny))


@pytest.mark.parametrize(("method", "accumulation"), ddp_worker.GRADIENT_METHODS)
def test_two_process_gradients_equal_one_process_gradients_of_the_global_batch(
    ddp_out, one_process, data_root, tmp_path, method, accumulation
) -> None:
    config = ddp_worker.train_config(method, str(data_root), str(tmp_path / "run"), accumulation)
    trainer = Trainer(config)
    trainer.setup(10)
    for case, plan in ddp_worker.gradient_cases(trainer).items():
        want = ddp_worker.gradients(trainer, plan)
        got = load_file(str(ddp_out / "grads" / f"{method}-{accumulation}-{case}.safetensors"))
        assert got.keys() == want.keys(), case
        torch.testing.assert_close(got.pop("__loss__"), want.pop("__loss__"), rtol=1e-6, atol=1e-6)
        scale = max(g.abs().max().item() for g in want.values())
        for name, g in want.items():
            err = (got[name] - g).abs().max().item()
            assert err <= GRAD_RTOL * scale, f"{case}: {name} differs by {err:.3g} (scale {scale:.3g})"
        if method == "uw":
            assert "method.weighting.s" in want  # the method's own parameters are compared too


@pytest.mark.parametrize("method", ddp_worker.CLI_METHODS)
def test_two_process_cli_run_equals_one_process_run(
    ddp_out, one_process, data_root, tmp_path, method
) -> None:
    ref = tmp_path / "ref"
    assert cli_main(ddp_worker.cli_args(method, str(data_root), str(ref))) == 0
    run = ddp_out / "runs" / method
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in ref.iterdir())

    def results(folder: Path) -> dict:
        return json.loads((folder / "results.json").read_text(encoding="utf-8"))

    got, want = results(run), results(ref)
    for split in ("val", "test"):
        assert got[split]["scores"] == pytest.approx(want[split]["scores"], abs=1e-9)
        assert got[split]["avg"] == pytest.approx(want[split]["avg"], abs=1e-9)
        assert got[split]["loss"] == pytest.approx(want[split]["loss"], rel=1e-5)
    assert got["best_epoch"] == want["best_epoch"]

    def train_losses(folder: Path) -> list[float]:
        lines = (folder / "log.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["train"]["loss"] for line in lines]

    assert len(train_losses(run)) == 2
    assert train_losses(run) == pytest.approx(train_losses(ref), rel=1e-5)
    weights, ref_weights = (load_file(str(f / "checkpoint" / "model.safetensors")) for f in (run, ref))
    assert weights.keys() == ref_weights.keys()
    for name, value in ref_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=1e-5, msg=name)
