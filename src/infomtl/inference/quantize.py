"""Dynamic int8 quantisation of the encoder for CPU inference (``--quantize int8``).

Every ``nn.Linear`` of the encoder, ``y = x Wᵀ + b`` (the attention projections and the
feed-forward layers: nearly all of a transformer's arithmetic), becomes PyTorch's dynamic
quantised Linear (``torch.ao.quantization.quantize_dynamic``; the affine integer scheme of
Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018, applied to BERT as in Zafrir et al., Q8BERT,
2019). The weights are stored once as int8 with one scale per tensor,

    W ≈ s_W · W_q,   W_q = round(W / s_W) ∈ [−128, 127],   s_W = max|W| / 127.5,

and each call quantises its input from the input's own range (hence *dynamic*: no
calibration data), ``x ≈ s_x · (x_q − z_x)`` with 8-bit ``x_q`` (7-bit on the x86 engines,
whose int8 kernels could overflow otherwise), then multiplies in int8 with int32
accumulation and rescales to fp32:

    y ≈ s_x · s_W · (x_q − z_x) W_qᵀ + b.

Embeddings, LayerNorms, the softmax and everything above the encoder (the shared MLP of
fast mode, the task heads) stay fp32; so does the activation between layers. Under a
cross-stitch model the task copies of the top layers (which live beside the encoder) are
quantised too. Int8 kernels run on the CPU only: a CUDA predictor refuses it.

``torch.ao.quantization`` is deprecated in favour of the separate ``torchao`` package but
works in the torch this release supports; its deprecation warnings are silenced here, once
per quantisation, rather than shown on every load.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from torch import nn

from infomtl.errors import InfomtlError
from infomtl.modeling.model import MultiTaskModel
from infomtl.modeling.sharing import CrossStitch
from infomtl.precision import QUANTIZE_MODES

log = logging.getLogger(__name__)


def check_quantize(quantize: str | None, device: torch.device | str) -> str:
    """``quantize`` (None: ``"none"``), checked: :class:`InfomtlError` for an unknown value,
    or ``int8`` on a device other than the CPU."""
    mode = "none" if quantize is None else quantize
    if mode not in QUANTIZE_MODES:
        raise InfomtlError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}")
    if mode == "int8" and torch.device(device).type != "cpu":
        raise InfomtlError(f"--quantize int8 runs on the CPU only (int8 kernels), not on {torch.device(device)}; "
                           "use device='cpu' or leave quantize unset")
    return mode


def quantized_modules(model: MultiTaskModel) -> list[nn.Module]:
    """The modules that :func:`quantize_encoder` quantises: the encoder, and the task copies of
    the top layers under cross-stitch sharing."""
    modules: list[nn.Module] = [model.encoder]
    if isinstance(model.sharing, CrossStitch):
        modules.append(model.sharing.copies)
    return modules


def quantize_encoder(model: MultiTaskModel) -> int:
    """Replace, in place, every ``nn.Linear`` of the model's encoder (module docstring) by a
    dynamic int8 Linear; returns how many were replaced. The model is put in eval mode."""
    from torch.ao.quantization import quantize_dynamic

    model.eval()
    before = sum(_linear_count(m) for m in quantized_modules(model))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantiz.*deprecated", category=UserWarning)
        for module in quantized_modules(model):
            quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=True)
    left = sum(_linear_count(m) for m in quantized_modules(model))
    return before - left


def quantize_units(units: list[Any]) -> None:
    """Quantise the encoder of every unit (:class:`~infomtl.inference.units.ModelUnit`) and log
    one line; :class:`InfomtlError` for a unit that is not a PyTorch model (an ONNX export)."""
    for unit in units:
        if not isinstance(unit.model, MultiTaskModel):
            raise InfomtlError("--quantize int8 needs a PyTorch model; this is an ONNX export "
                               "(run the safetensors export, or quantise the ONNX graph with onnxruntime)")
    replaced = sum(quantize_encoder(unit.model) for unit in units)
    log.info("encoder quantised to int8 (dynamic, %d Linear layers; the heads stay fp32)", replaced)


def _linear_count(module: nn.Module) -> int:
    """The float ``nn.Linear`` modules of ``module`` (dynamic quantised ones are not: their
    class is ``torch.ao.nn.quantized.dynamic.Linear``)."""
    return sum(type(m) is nn.Linear for m in module.modules())
