"""infomtl: multi-task representation learning for natural language understanding.

Importing the package is cheap: torch, transformers and the rest load only when
the modules that need them are imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infomtl.config import TrainConfig
from infomtl.version import __version__

if TYPE_CHECKING:
    from infomtl.training.trainer import TrainResult

__all__ = ["TrainConfig", "__version__", "load", "train"]


def train(config: TrainConfig) -> TrainResult:
    """Train one run (:func:`infomtl.training.api.train`): ``infomtl.train(TrainConfig(...))``
    returns the run folder and its results, as ``infomtl train`` does from the command line.
    torch is imported on the first call only."""
    from infomtl.training import train as _train

    return _train(config)


def load(path, device: str = "cpu", revision: str | None = None, quantize: str | None = None,
         precision: str = "auto"):
    """A predictor for a run folder, an STL folder, an export folder, or the Hugging Face Hub
    repo id of an export (``infomtl.load("user/model", revision="v1")``; an existing local
    path wins over a repo id).

    ``quantize="int8"``: the encoder dynamically quantised to int8 for CPU inference
    (:mod:`infomtl.inference.quantize`); ``precision``: ``"auto"`` (bf16 autocast on a CPU
    with bf16 instructions, else fp32), ``"fp32"`` or ``"bf16"``.

    ``infomtl.load(path).predict(texts)`` returns one ``{task: prediction}`` dict
    per text; see :mod:`infomtl.inference.predict` and :mod:`infomtl.inference.hub`.
    torch is imported on the first call only.
    """
    from infomtl.inference.predict import load as _load

    return _load(path, device=device, revision=revision, quantize=quantize, precision=precision)
