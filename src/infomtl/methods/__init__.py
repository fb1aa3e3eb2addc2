"""Training methods: objectives (heads + auxiliary terms) composed with weightings.

Importing this package registers every built-in method.
"""

from infomtl.methods import (  # noqa: F401  (registration)
    hmtl,
    infomtl,
    linear,
    loss_weighting,
    mtvib,
    pcgrad,
    textcnn,
    vipmtl,
    vmtl,
    weighting,
)
from infomtl.methods.base import (
    BackwardContext,
    GradientAggregator,
    Hyper,
    LossTerms,
    LossWeighter,
    Objective,
    Weighting,
)
from infomtl.methods.compose import Method
from infomtl.methods.registry import (
    OBJECTIVES,
    WEIGHTINGS,
    MethodSpec,
    method_names,
    register_objective,
    register_weighting,
    resolve_method,
)

__all__ = [
    "OBJECTIVES",
    "WEIGHTINGS",
    "BackwardContext",
    "GradientAggregator",
    "Hyper",
    "LossTerms",
    "LossWeighter",
    "Method",
    "MethodSpec",
    "Objective",
    "Weighting",
    "method_names",
    "register_objective",
    "register_weighting",
    "resolve_method",
]
