"""Epoch hooks: measurements a run adds to each epoch's line of ``log.jsonl``.

A hook is called after each epoch's validation as ``hook(trainer)`` and returns the
entries it adds to the line. The trainer knows no hook by name: :func:`epoch_hooks`
picks those a config asks for, and :func:`infomtl.training.train` passes them on.
"""

from __future__ import annotations

from typing import Any

from infomtl.analysis.information import information_estimates
from infomtl.config import TrainConfig
from infomtl.training.trainer import EpochHook, Trainer


def information_plane(trainer: Trainer) -> dict[str, Any]:
    """``--track-information``: information-plane estimates on the val split, or on
    ``--information-rows`` of it (the RNG state is restored, so the run's results are unchanged)."""
    if "val" not in trainer.encoded:
        return {}
    est = information_estimates(
        trainer.accelerator.unwrap_model(trainer.model), trainer.tasks, trainer.encoded["val"],
        trainer.pad_id, trainer.accelerator.device, batch_size=128, seed=trainer.config.run.seed,
        max_rows=trainer.config.run.information_rows,
    )
    return {"information": {"ixz": est["ixz"], "izzt": est["izzt"], "batch_size": est["batch_size"]}}


def sharing_weights(trainer: Trainer) -> dict[str, Any]:
    """``--share`` / ``--head-layer``: what each task reads, as learned so far — the layer
    weights (and scale) of a layer mixture, or the α of the cross-stitch units."""
    sharing = trainer.accelerator.unwrap_model(trainer.model).sharing
    return {} if sharing is None else {"sharing": sharing.log_values([t.name for t in trainer.tasks])}


def epoch_hooks(config: TrainConfig) -> list[EpochHook]:
    """The epoch hooks ``config`` asks for (the sharing weights whenever a run learns to share)."""
    hooks: list[EpochHook] = [information_plane] if config.run.track_information else []
    if config.model.share != "none" or config.model.head_layers:
        hooks.append(sharing_weights)
    return hooks
