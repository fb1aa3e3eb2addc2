"""A training run's configuration: :class:`TrainConfig` and its sections (``infomtl.config.sections``)."""

from infomtl.config.sections import (
    BatchingOptions,
    DataOptions,
    MethodOptions,
    ModelOptions,
    OptimOptions,
    RunOptions,
)
from infomtl.config.train import TrainConfig, check_hf_task, flat_options
from infomtl.options import load_yaml, option

__all__ = [
    "BatchingOptions", "DataOptions", "MethodOptions", "ModelOptions", "OptimOptions", "RunOptions",
    "TrainConfig", "check_hf_task", "flat_options", "load_yaml", "option",
]
