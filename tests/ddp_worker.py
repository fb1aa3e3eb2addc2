"""What each process runs in ``test_ddp.py`` (under ``torchrun --nproc-per-node 2``, gloo).

``python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py OUT DATA``

1. For every (method, plan) of :func:`gradient_cases`: one ``Trainer.backward_step`` on
   the plan; process 0 saves the averaged gradients (``OUT/grads/<case>.safetensors``).
2. For every method of :data:`CLI_METHODS`: ``infomtl train`` through :func:`infomtl.cli.main`
   (the code path of ``torchrun -m infomtl train``) into ``OUT/runs/<method>``.

The ``tiny`` backbone's dropout is switched off (:func:`fakes.dropout_free`) here and in the
one-process references, so neither draws dropout masks in the encoder and the two can be
compared tightly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fakes import dropout_free

TASKS = "irony,hate,offensive"
#: methods trained end to end through the CLI (loss weighting, own parameters, gradients)
CLI_METHODS = ("ew", "uw", "pcgrad")
#: (method, grad_accumulation) of the gradient checks; ``method:key=value`` adds method args
GRADIENT_METHODS = (("ew", 1), ("uw", 1), ("pcgrad", 1), ("pcgrad:grad_space=rep", 1), ("infomtl", 1), ("uw", 2))


def cli_args(method: str, data: str, out: str) -> list[str]:
    """``infomtl train`` arguments of the end-to-end comparison."""
    return [
        "train", "--backbone", "tiny", "--tasks", TASKS, "--data-dir", data, "--method", method,
        "--max-length", "32", "--batch-size", "8", "--epochs", "2", "--max-steps", "3",
        "--max-train-examples", "24", "--max-eval-examples", "16", "--eval-batch-size", "4",
        "--lr", "1e-3", "--head-dropout", "0", "--patience", "0", "--no-progress", "--cpu",
        "--output-dir", out,
    ]


def train_config(method: str, data: str, out: str, grad_accumulation: int = 1):
    """The config of the gradient checks (``method:key=value`` adds a method arg)."""
    from infomtl.config import TrainConfig

    method, _, arg = method.partition(":")
    args = dict([arg.split("=", 1)]) if arg else {}
    return TrainConfig(
        backbone="tiny", tasks=TASKS.split(","), data_dir=data, method=method, method_args=args, max_length=32,
        batch_size=8, max_train_examples=24, max_eval_examples=8, head_dropout=0.0,
        progress=False, cpu=True, output_dir=out, grad_accumulation=grad_accumulation,
    )


def gradient_cases(trainer) -> dict[str, list[np.ndarray]]:
    """Global steps to check: a planned step, a step with fewer rows than processes (one
    process encodes a stand-in row), and one with a task's single row on one process."""
    planned = trainer.batcher.epoch(1)[0]
    empty = np.zeros(0, dtype=np.int64)
    return {
        "planned": planned,
        "one-row": [planned[0][:1], empty, empty],
        "skewed": [planned[0][:3], planned[1][:1], planned[2][:2]],
    }


def gradients(trainer, plan: list[np.ndarray]) -> dict:
    """``{name: .grad}`` of the model and method parameters after one ``backward_step``."""
    trainer.optimizer.zero_grad(set_to_none=True)
    total, _, _ = trainer.backward_step(plan, 0)
    params = dict(trainer.model.named_parameters())
    params.update({f"method.{k}": v for k, v in trainer.method.named_parameters()})
    grads = {k: v.grad.detach().clone() for k, v in params.items() if v.grad is not None}
    grads["__loss__"] = total.detach().reshape(1).clone()
    return grads


def main(out: str, data: str) -> None:
    import torch
    from safetensors.torch import save_file

    import infomtl.modeling.backbones
    from infomtl.cli import main as cli_main
    from infomtl.training import Trainer

    infomtl.modeling.backbones._tiny = dropout_free(infomtl.modeling.backbones._tiny)
    torch.set_num_threads(1)
    root = Path(out)
    for method, accumulation in GRADIENT_METHODS:
        trainer = Trainer(train_config(method, data, str(root / "unused"), accumulation))
        trainer.setup(10)
        for case, plan in gradient_cases(trainer).items():
            grads = gradients(trainer, plan)
            if trainer.accelerator.is_main_process:
                (root / "grads").mkdir(parents=True, exist_ok=True)
                save_file(grads, str(root / "grads" / f"{method}-{accumulation}-{case}.safetensors"))
    for method in CLI_METHODS:
        code = cli_main(cli_args(method, data, str(root / "runs" / method)))
        if code != 0:
            raise SystemExit(code)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
