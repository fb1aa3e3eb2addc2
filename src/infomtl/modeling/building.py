"""Building a run's model: the encoder (and, in fast mode, the shared MLP above cached
features) under the method's decoder.

A run trains on cached features (:mod:`infomtl.modeling.feature_cache`) when the
backbone is frozen and the method's heads read the pooled representation, not token
states; its shared representation is then the MLP's output.
"""

from __future__ import annotations

import torch

from infomtl.config import TrainConfig
from infomtl.errors import ConfigError
from infomtl.modeling.backbones import Backbone
from infomtl.modeling.model import MultiTaskModel, SharedMLP


def uses_features(config: TrainConfig, token_states: bool) -> bool:
    """Whether a run trains on cached features: a frozen backbone under heads that read
    the pooled representation (``token_states`` false)."""
    return config.freeze_backbone and not token_states


def shared_size(config: TrainConfig, backbone: Backbone, token_states: bool) -> int:
    """Dimension of ``h``: the MLP width in fast mode, else the encoder's hidden size."""
    return config.mlp_width if uses_features(config, token_states) else backbone.hidden_size


def build_model(config: TrainConfig, backbone: Backbone, decoder: torch.nn.Module) -> MultiTaskModel:
    """The run's model: encoder (+ shared MLP in fast mode) + the method's decoder
    (whose ``token_states`` says whether its heads read token states)."""
    mlp = None
    if uses_features(config, bool(getattr(decoder, "token_states", False))):
        mlp = SharedMLP(backbone.hidden_size, config.mlp_width, config.mlp_dropout)
    return MultiTaskModel(
        backbone.encoder, decoder, config.pooling, config.chunk_tokens,
        freeze_encoder=config.freeze_backbone, shared_mlp=mlp,
    )


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
