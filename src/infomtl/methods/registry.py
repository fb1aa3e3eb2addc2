"""The method registry and the resolution of ``--method`` / ``--weighting``.

Every objective and weighting registers under a unique name (and aliases); a
duplicate is an error at import time. ``resolve_method`` turns the user's words
into a validated :class:`MethodSpec` before any model is loaded:

* ``--method ew`` (a weighting) → the linear-head objective with that weighting;
* ``--method infomtl`` (an objective) → that objective with ``--weighting`` (by
  default the objective's ``default_weighting``: EW, UW for MT-VIB), e.g.
  ``--method infomtl --weighting uw``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from infomtl.errors import ConfigError, did_you_mean, unknown_names
from infomtl.methods.base import Component, Hyper, Objective, Weighting, WeightingHyper
from infomtl.options import scalar

OBJECTIVES: dict[str, type[Objective]] = {}
WEIGHTINGS: dict[str, type[Weighting]] = {}
_ALIASES: dict[str, str] = {}

#: the objective a bare weighting runs with
DEFAULT_OBJECTIVE = "linear"
#: the weighting a bare objective runs with
DEFAULT_WEIGHTING = "ew"


ObjectiveT = TypeVar("ObjectiveT", bound=Objective)
WeightingT = TypeVar("WeightingT", bound=Weighting)
HyperT = TypeVar("HyperT", bound=Hyper)


def _claim_names(cls: type[Component]) -> str:
    """Check that ``cls``'s name and aliases are free, record the aliases, return the name."""
    for key in (cls.name, *cls.aliases):
        if not key or key in OBJECTIVES or key in WEIGHTINGS or key in _ALIASES:
            raise ValueError(f"method name {key!r} is empty or already registered")
    for alias in cls.aliases:
        _ALIASES[alias] = cls.name
    return cls.name


def register_objective(cls: type[ObjectiveT]) -> type[ObjectiveT]:
    """Class decorator: register a representation objective under ``cls.name``."""
    OBJECTIVES[_claim_names(cls)] = cls
    return cls


def register_weighting(cls: type[WeightingT]) -> type[WeightingT]:
    """Class decorator: register a loss weighter or gradient aggregator under ``cls.name``."""
    WEIGHTINGS[_claim_names(cls)] = cls
    return cls


def canonical(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    return _ALIASES.get(key, key)


def default_weighting(objective: str) -> str:
    """The weighting an objective runs with when no ``--weighting`` is given."""
    cls = OBJECTIVES.get(objective)
    return cls.default_weighting if cls is not None else DEFAULT_WEIGHTING


def method_names() -> list[str]:
    """Names a user can pass to ``--method`` (objectives and weightings)."""
    return sorted(n for n in (*OBJECTIVES, *WEIGHTINGS) if n != DEFAULT_OBJECTIVE)


@dataclass(frozen=True)
class MethodSpec:
    """A validated objective + weighting with their hyperparameters."""

    objective: str
    weighting: str
    objective_hp: Hyper
    weighting_hp: WeightingHyper

    @property
    def name(self) -> str:
        """``ew``, ``infomtl``, ``infomtl+uw``... (no suffix for the objective's default weighting)."""
        if self.objective == DEFAULT_OBJECTIVE:
            return self.weighting
        if self.weighting == default_weighting(self.objective):
            return self.objective
        return f"{self.objective}+{self.weighting}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "weighting": self.weighting,
            "objective_args": dataclasses.asdict(self.objective_hp),
            "weighting_args": dataclasses.asdict(self.weighting_hp),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodSpec:
        args = {**data.get("objective_args", {}), **data.get("weighting_args", {})}
        return resolve_method(data["objective"], data["weighting"], args)


def resolve_method(
    method: str, weighting: str | None = None, args: dict[str, Any] | None = None
) -> MethodSpec:
    """Validate a method (and optional weighting) and build its hyperparameters.

    ``args`` maps hyperparameter names to values (strings from the CLI are coerced
    to the field's type); a key neither part knows is an error listing the valid ones.
    """
    name = canonical(method)
    wname = canonical(weighting) if weighting else None
    if name in WEIGHTINGS:
        if wname is not None and wname != name:
            raise ConfigError(
                f"--method {method} is a weighting and takes no --weighting; pass an objective "
                f"({', '.join(sorted(n for n in OBJECTIVES if n != DEFAULT_OBJECTIVE))}) as "
                f"--method and the weighting as --weighting"
            )
        objective, wname = DEFAULT_OBJECTIVE, name
    elif name in OBJECTIVES:
        objective = name
        wname = wname or default_weighting(name)
        if wname not in WEIGHTINGS:
            hint = f" ({wname} is an objective: use --method {wname})" if wname in OBJECTIVES else ""
            raise ConfigError(
                f"unknown weighting {weighting!r}{did_you_mean(str(weighting), WEIGHTINGS)}; expected one of "
                f"{', '.join(sorted(WEIGHTINGS))}{hint}"
            )
    else:
        hint = ("; the zero-shot LLM baseline is not trained: run `infomtl baseline llm`"
                if "llm" in name or "zero" in name else "")
        raise ConfigError(f"unknown method {method!r}{did_you_mean(method, method_names())}; "
                          f"expected one of {', '.join(method_names())}{hint}")
    ocls, wcls = OBJECTIVES[objective], WEIGHTINGS[wname]
    args = dict(args or {})
    ohp = _build_hyper(ocls.Hyper, ocls.name, args)
    whp = _build_hyper(wcls.Hyper, wcls.name, args)
    try:
        wcls.check_objective(whp, ocls)
    except ValueError as exc:
        raise ConfigError(f"method {MethodSpec(objective, wname, ohp, whp).name}: {exc}") from exc
    if args:
        valid = sorted({f.name for c in (ocls, wcls) for f in dataclasses.fields(c.Hyper)})
        unknown = unknown_names("hyperparameter", sorted(args), valid)
        raise ConfigError(
            f"method {MethodSpec(objective, wname, ohp, whp).name}: {unknown}; valid: {', '.join(valid) or 'none'}"
        )
    return MethodSpec(objective, wname, ohp, whp)


def _build_hyper(kind: type[HyperT], method: str, args: dict[str, Any]) -> HyperT:
    """Take the keys of the hyperparameter dataclass ``kind`` (method ``method``) out of
    ``args``, coerce and validate them."""
    hints = typing.get_type_hints(kind)
    values = {}
    for f in dataclasses.fields(kind):
        if f.name in args:
            values[f.name] = _coerce(method, f.name, args.pop(f.name), hints[f.name])
    hp = kind(**values)
    try:
        hp.validate()
    except ValueError as exc:
        raise ConfigError(f"method {method}: {exc}") from exc
    return hp


def _coerce(method: str, key: str, value: Any, kind: Any) -> Any:
    try:
        return scalar(value, kind)
    except (TypeError, ValueError):
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"method {method}: {key} must be a {name}, got {value!r}") from None


def objective_of(method: str) -> type[Objective] | None:
    """The objective class ``method`` names (None for a weighting, whose objective has no
    ablations, or an unknown name)."""
    return OBJECTIVES.get(canonical(method))


def ablation_args(method: str, names: list[str]) -> dict[str, bool]:
    """The ``method_args`` of ``--ablate``: each named component of the method switched off,
    ``--method infomtl --ablate simax`` → ``{"simax": False}``. A name the method does not
    declare (:attr:`Objective.ablations`) is an error listing the ones it has."""
    cls = objective_of(method)
    declared = {a.key: a for a in (cls.ablations if cls is not None else ())}
    args: dict[str, bool] = {}
    for raw in names:
        key = raw.strip().replace("-", "_")
        if key not in declared:
            valid = ", ".join(declared) or "none"
            raise ConfigError(f"--ablate {raw}: method {method} has no such component (its ablations: {valid})")
        args[key] = False
    return args
