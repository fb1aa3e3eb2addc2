"""Building a run's model: the encoder (and, in fast mode, the shared MLP above cached
features) under the method's decoder, with the sharing module of ``--share`` /
``--head-layer`` (:mod:`infomtl.modeling.sharing`).

A run trains on cached features (:mod:`infomtl.modeling.feature_cache`) when the
backbone is frozen and the method's heads read the pooled representation, not token
states; its shared representation is then the MLP's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from infomtl.config import TrainConfig
from infomtl.errors import ConfigError, unknown_names
from infomtl.modeling.backbones import Backbone
from infomtl.modeling.model import MultiTaskModel, SharedMLP
from infomtl.modeling.sharing import (
    CrossStitch,
    LayerSharing,
    Sharing,
    SuccessiveRegularizer,
    layer_groups,
    num_layers,
    successive_limits,
)


def uses_features(config: TrainConfig, token_states: bool) -> bool:
    """Whether a run trains on cached features: a frozen backbone under heads that read
    the pooled representation (``token_states`` false)."""
    return config.model.freeze_backbone and not token_states


def reads_layers(config: TrainConfig) -> bool:
    """Whether the run's heads read the pooled states of every layer (layer mixture or
    task at a layer), so that fast mode caches every layer's features."""
    return config.model.share == "layer-mix" or (config.model.share == "none" and bool(config.model.head_layers))


def shared_size(config: TrainConfig, backbone: Backbone, token_states: bool) -> int:
    """Dimension of ``h``: the MLP width in fast mode, else the encoder's hidden size."""
    return config.model.mlp_width if uses_features(config, token_states) else backbone.hidden_size


def build_model(config: TrainConfig, backbone: Backbone, decoder: torch.nn.Module,
                task_names: Sequence[str] = ()) -> MultiTaskModel:
    """The run's model: encoder (+ shared MLP in fast mode) + the method's decoder
    (whose ``token_states`` says whether its heads read token states), with the sharing
    module and successive regulariser the config asks for (``task_names``: the run's
    tasks, in order; needed by ``--share`` and ``--head-layer``)."""
    token_states = bool(getattr(decoder, "token_states", False))
    mlp = None
    if uses_features(config, token_states):
        mlp = SharedMLP(backbone.hidden_size, config.model.mlp_width, config.model.mlp_dropout)
    spec = sharing_spec(config, task_names)
    sharing = build_sharing(spec, backbone.encoder, task_names, token_states)
    regularizer = None
    if config.model.successive_reg > 0:
        top = num_layers(backbone.encoder)
        limits = successive_limits(spec["head_layers"], len(task_names), top)
        regularizer = SuccessiveRegularizer(layer_groups(backbone.encoder), limits, config.model.successive_reg)
    return MultiTaskModel(
        backbone.encoder, decoder, config.model.pooling, config.model.chunk_tokens,
        freeze_encoder=config.model.freeze_backbone, shared_mlp=mlp, sharing=sharing, regularizer=regularizer,
        packing=config.model.packing,
    )


def sharing_spec(config: TrainConfig, task_names: Sequence[str]) -> dict[str, Any]:
    """What a run's sharing module is, by task index (what an export's manifest records):
    ``{"share": ..., "share_layers": K, "head_layers": {t: k}}``."""
    index = {name: t for t, name in enumerate(task_names)}
    unknown = [name for name in config.model.head_layers if name not in index]
    if unknown:
        raise ConfigError(f"--head-layer: {unknown_names('task', unknown, list(index))} "
                          f"(the run's tasks: {', '.join(task_names)})")
    return {"share": config.model.share, "share_layers": config.model.share_layers,
            "head_layers": {index[name]: int(k) for name, k in config.model.head_layers.items()}}


def build_sharing(spec: dict[str, Any], encoder: torch.nn.Module, task_names: Sequence[str],
                  token_states: bool = False) -> Sharing | None:
    """The sharing module of ``spec`` (:func:`sharing_spec`) over ``encoder``, or ``None``.
    A cross-stitch module replaces the encoder's top layers (:class:`CrossStitch`)."""
    share, head_layers = spec["share"], {int(t): int(k) for t, k in spec["head_layers"].items()}
    if share == "none" and not head_layers:
        return None
    if token_states:
        raise ConfigError("--share and --head-layer need heads that read the pooled representation "
                          "(not token-state heads such as stl-cnn)")
    top = num_layers(encoder)
    for t, k in head_layers.items():
        if k > top:
            raise ConfigError(f"--head-layer {task_names[t]}={k}: the encoder has {top} layers (K in 1..{top})")
    if share == "cross-stitch":
        return CrossStitch(encoder, len(task_names), int(spec["share_layers"]))
    return LayerSharing(len(task_names), top + 1, mix=share == "layer-mix", head_layers=head_layers)


def compile_encoder(model: MultiTaskModel, backend: str = "inductor") -> None:
    """``torch.compile`` the model's encoder in place (``nn.Module.compile``: parameter
    names, checkpoints and the ``encoder`` attribute stay as they are). Steps are padded
    to their own longest row, so the first few shapes compile, then dynamic shapes.

    Inductor draws dropout masks with the eager random generator (``fallback_random``),
    so a compiled run gives the results of an uncompiled one up to float rounding.
    """
    if not hasattr(torch.nn.Module, "compile"):
        raise ConfigError("--compile needs torch >= 2.2 (nn.Module.compile)")
    if backend == "inductor":
        import torch._inductor.config as inductor_config

        inductor_config.fallback_random = True
    model.encoder.compile(backend=backend)
