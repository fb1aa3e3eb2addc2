"""Dataclass fields that are also CLI flags, and reading their values from YAML and flags.

:func:`option` declares a field with its ``--help`` text, group and choices;
:func:`option_values` and :func:`coerce` turn a YAML mapping or CLI strings into typed
values with one-line errors; :func:`load_yaml` reads a config file (a key given twice is
an error at its line). :class:`infomtl.config.TrainConfig` and the LLM baseline's config
are built from these.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

from infomtl.errors import ConfigError, unknown_names


def option(default: Any, help: str, group: str, choices: tuple[str, ...] | None = None,
           metavar: str | None = None, flag: str | None = None, shown: str | None = None,
           key: str | None = None, **kw: Any):
    """A dataclass field that is also a CLI flag: its ``--help`` text, help group, valid
    values (``choices``) and, where the value itself does not say it (``None``, an empty
    list), what the default means
    (``shown``: the text after ``default:`` in ``--help``); ``flag``: a repeatable flag of
    its own name (one list item per use); ``key``: the option's flag and YAML key where it is not
    the field's name."""
    meta: dict[str, Any] = {"help": help, "group": group}
    if choices:
        meta["choices"] = choices
    if metavar:
        meta["metavar"] = metavar
    if flag:  # a repeatable flag of its own name (one list item per use)
        meta["flag"] = flag
    if shown:
        meta["shown"] = shown
    if key:
        meta["key"] = key
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error at its line
    (the safe loader keeps the last value silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {first})", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def safe_load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (:class:`UniqueKeyLoader`); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def option_key(f: dataclasses.Field) -> str:
    """The option a field is: its flag (``--KEY``) and flat YAML key (its name unless
    :func:`option` was given ``key``)."""
    return f.metadata.get("key", f.name)


def option_fields(cls: type) -> list[tuple[str, dataclasses.Field, Any]]:
    """Each option of config class ``cls``: its key (flag and YAML key), its field and its type;
    a class with ``SECTIONS`` (:class:`infomtl.config.TrainConfig`) has the fields of its sections."""
    sections = getattr(cls, "SECTIONS", None)
    classes = list(sections.values()) if sections else [cls]
    return [(option_key(f), f, typing.get_type_hints(c)[f.name])
            for c in classes for f in dataclasses.fields(c)]


def option_values(cls: type, data: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """The fields of dataclass ``cls`` that ``data`` sets (keys with dashes or underscores),
    each coerced to its type; an unknown key is a :class:`ConfigError` naming ``source``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = [str(k) for k in data if str(k).replace("-", "_") not in known]
    if unknown:
        raise ConfigError(f"{source}: {unknown_names('option', unknown, known)} (see `infomtl train --help`)")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        values[name] = coerce(name, value, hints[name], source)
    return values


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a mapping (one-line errors for bad files; a key given
    twice is an error at its line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    try:
        data = safe_load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    return data


def flag_name(name: str) -> str:
    """The CLI flag of a field: ``max_length`` -> ``max-length``."""
    return name.replace("_", "-")


def _split_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    raise TypeError(value)


def parse_key_values(value: Any, name: str = "method_args") -> dict[str, Any]:
    """``"a=1,b=x"`` or a mapping → ``{"a": "1", "b": "x"}`` (values coerced later).

    Raises:
        ConfigError: an item without ``=``, with an empty key or value, or a key given twice
            (the message names the item).
        TypeError: a value that is neither a string nor a mapping.
    """
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        out: dict[str, Any] = {}
        for part in (p.strip() for p in value.split(",") if p.strip()):
            key, eq, val = (s.strip() for s in part.partition("="))
            problem = ("has no '='" if not eq else "has no key before '='" if not key
                       else "has no value after '='" if not val else "repeats the key" if key in out else "")
            if problem:
                raise ConfigError(f"{name}: item {part!r} {problem}; expected key=value pairs "
                                  f"separated by commas, e.g. alpha=0.1,beta=0.01")
            out[key] = val
        return out
    raise TypeError(value)


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(value)
    return {str(k): v for k, v in value.items()}


def scalar(value: Any, kind: Any) -> Any:
    """``value`` as a ``bool`` (true/false/yes/no/1/0), ``int`` (no fractional part), finite
    ``float`` or ``str``; any other ``kind`` returns it unchanged. Raises ``TypeError`` /
    ``ValueError`` for a value that is not one."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        low = str(value).strip().lower()
        if low not in ("true", "false", "yes", "no", "1", "0"):
            raise ValueError(value)
        return low in ("true", "yes", "1")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if kind is float:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    return str(value) if kind is str else value


def coerce(name: str, value: Any, kind: Any, source: str = "config") -> Any:
    """Coerce a YAML or CLI value to the field type ``kind`` (one-line error otherwise)."""
    origin = typing.get_origin(kind)
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    optional = type(None) in typing.get_args(kind)
    try:
        if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
            if optional:
                return None
            raise TypeError(value)
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
            kind, origin = args[0], typing.get_origin(args[0])
        if origin is list and typing.get_origin(typing.get_args(kind)[0]) is dict:  # hf_tasks
            items = value if isinstance(value, list) else [value]
            return [parse_key_values(v, name) if isinstance(v, str) else _mapping(v) for v in items]
        if origin is list:
            return _split_list(value)
        if origin is dict:  # a repeatable flag gives one "k=v,..." item per use
            items = value if isinstance(value, list) else [value]
            merged: dict[str, Any] = {}
            for item in items:
                merged.update(parse_key_values(item, name))
            return merged
        return scalar(value, kind) if kind in (bool, int, float) else str(value)
    except ConfigError as exc:  # a bad key=value item, named
        raise ConfigError(f"{source}: {exc}") from None
    except (TypeError, ValueError):
        expected = {list: "a comma-separated list", dict: "key=value pairs"}.get(
            origin, getattr(kind, "__name__", str(kind))
        )
        raise ConfigError(f"{source}: {name} must be {expected}, got {value!r}") from None
