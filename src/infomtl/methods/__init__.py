"""Training methods: objectives (heads + auxiliary terms) composed with weightings.

``objectives/`` and ``weightings/`` hold one method per module, its pure rule beside
its class; ``single_task`` the single-task baselines run one model per task.

Importing this package registers every built-in method.
"""

from infomtl.methods.aggregation import GradientAggregator
from infomtl.methods.base import (
    Ablation,
    BackwardContext,
    Hyper,
    LossTerms,
    LossWeighter,
    Objective,
    Weighting,
)
from infomtl.methods.compose import Method
from infomtl.methods.objectives import (  # noqa: F401  (registration)
    hmtl,
    infomtl,
    linear,
    mtvib,
    textcnn,
    vipmtl,
    vmtl,
)
from infomtl.methods.registry import (
    OBJECTIVES,
    WEIGHTINGS,
    MethodSpec,
    ablation_args,
    method_names,
    objective_of,
    register_objective,
    register_weighting,
    resolve_method,
)
from infomtl.methods.weightings import (  # noqa: F401  (registration)
    dtp,
    dwa,
    ew,
    gls,
    imtl_l,
    pcgrad,
    rlw,
    si,
    tw,
    uw,
)

__all__ = [
    "OBJECTIVES",
    "WEIGHTINGS",
    "Ablation",
    "BackwardContext",
    "GradientAggregator",
    "Hyper",
    "LossTerms",
    "LossWeighter",
    "Method",
    "MethodSpec",
    "Objective",
    "Weighting",
    "ablation_args",
    "method_names",
    "objective_of",
    "register_objective",
    "register_weighting",
    "resolve_method",
]
