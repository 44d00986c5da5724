r"""Task settings: the dataclass fields a task exposes to experiment configs, declared once.

A setting is a field of the task's frozen dataclass with a one-line description and its bounds::

    t_max: float = setting(20.0, doc="trial length", gt=0)
    batch_size: int = setting(128, doc="trials per batch B", ge=1)
    c: float = setting(doc="decay rate c* of the target")          # required

The same declaration gives the constructor's checks (:func:`check_settings`, run by
``AbstractTask.__post_init__``) and the TOML schema of experiment configs
(:meth:`~overlapflow.tasks.AbstractTask.config_fields`), so the two cannot disagree.

Types and what they accept:

- ``float``: a finite number (ints too, not bools); ``int``: an integer (not a bool);
  ``bool``; ``str``; ``Literal[...]``: one of the listed values;
- ``tuple[X, ...]`` (any length) or ``tuple[X, X]`` (that many entries) of one of those types:
  a TOML array; a list is stored as a tuple, so that tasks stay hashable.

Bounds: ``ge``, ``gt``, ``le``, ``lt`` on a number (on every entry of a tuple); ``min_length``,
``max_length`` on a tuple ``tuple[X, ...]``.

A task whose TOML table differs from its fields overrides ``config_fields`` (listing
:class:`Setting` values, which may also be of type ``dict[str, X]``, a TOML table, or
:class:`~overlapflow.Nonlinearity`, a registered name) and ``from_config``; see the teacher.

A setting that is not allowed raises :class:`TaskSettingError` (a ValueError), here and in every
task's own checks: it names the task, the field, its value and what is allowed, so that an
experiment config reports it at that key of the task's table.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

#: Bounds on numbers: name -> (comparison that must hold, its symbol).
NUMBER_BOUNDS = {
    "gt": (operator.gt, ">"),
    "ge": (operator.ge, ">="),
    "lt": (operator.lt, "<"),
    "le": (operator.le, "<="),
}
LENGTH_BOUNDS = ("min_length", "max_length")


class TaskSettingError(ValueError):
    """A task's setting that is not allowed: ``task`` (the class name), ``field``, ``value`` and
    ``allowed`` (what is). Its message is one line, ``Task.field = value: allowed``; ``entry`` names
    a part of the field (``"['zm']"``, ``".batch_size"``: ``Task.field['zm'] = value: allowed``), and
    ``show_value=False`` leaves the value out where ``allowed`` already says it (``Task.field: allowed``)."""

    def __init__(self, task: str, field: str, value: Any, allowed: str, entry: str = "", show_value: bool = True):
        self.task, self.field, self.value, self.allowed = task, field, value, allowed
        self.entry, self.show_value = entry, show_value
        shown = f" = {value!r}" if show_value else ""
        super().__init__(f"{task}.{field}{entry}{shown}: {allowed}")

    def __reduce__(self):
        return type(self), (self.task, self.field, self.value, self.allowed, self.entry, self.show_value)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting of a task: name, type, default (``dataclasses.MISSING``: required), description and bounds."""

    name: str
    type: Any
    default: Any = dataclasses.MISSING
    doc: str = ""
    bounds: Mapping[str, float] = dataclasses.field(default_factory=dict)


def setting(default: Any = dataclasses.MISSING, *, doc: str, **bounds: float) -> Any:
    """A dataclass field that is a task setting (see the module docstring); no default: required."""
    unknown = set(bounds) - set(NUMBER_BOUNDS) - set(LENGTH_BOUNDS)
    if unknown:
        raise TypeError(f"setting: unknown bounds {sorted(unknown)}; allowed: {[*NUMBER_BOUNDS, *LENGTH_BOUNDS]}")
    metadata = {"doc": doc, "bounds": types.MappingProxyType(bounds)}
    return dataclasses.field(default=default, metadata=metadata)


@functools.cache
def field_settings(task: type) -> tuple[Setting, ...]:
    """The settings of a task class: its dataclass fields declared with :func:`setting`, in order."""
    hints = typing.get_type_hints(task)
    return tuple(
        Setting(f.name, hints[f.name], f.default, f.metadata["doc"], f.metadata["bounds"])
        for f in dataclasses.fields(task)
        if "doc" in f.metadata
    )


def tuple_entries(annotation) -> tuple[Any, int | None]:
    """(entry type, length or None for any length) of ``tuple[X, ...]`` or ``tuple[X, X, ...]``."""
    args = typing.get_args(annotation)
    if len(args) == 2 and args[1] is Ellipsis:
        return args[0], None
    if not args or any(a != args[0] for a in args):
        raise TypeError(f"{annotation!r}: a tuple setting has entries of one type (tuple[X, ...] or tuple[X, X])")
    return args[0], len(args)


def check_settings(task) -> None:
    """Check every setting of ``task`` against its type and bounds, storing lists as tuples.

    Raises :class:`TaskSettingError` ``"Name.field = value: what is allowed"``.
    """
    for s in field_settings(type(task)):
        value = _stored(s.type, getattr(task, s.name))
        if not _valid(s.type, s.bounds, value):
            raise TaskSettingError(type(task).__name__, s.name, getattr(task, s.name), _allowed(s.type, s.bounds))
        object.__setattr__(task, s.name, value)


def _stored(annotation, value):
    """Lists given for tuple settings as tuples (recursively)."""
    if typing.get_origin(annotation) is tuple and isinstance(value, (list, tuple)):
        entry, _ = tuple_entries(annotation)
        return tuple(_stored(entry, v) for v in value)
    return value


def _valid(annotation, bounds: Mapping[str, float], value) -> bool:
    if annotation is float:
        return is_number(value) and _within(bounds, value)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool) and _within(bounds, value)
    if annotation in (bool, str):
        return isinstance(value, annotation)
    if typing.get_origin(annotation) is Literal:
        return any(type(value) is type(choice) and value == choice for choice in typing.get_args(annotation))
    if typing.get_origin(annotation) is tuple:
        entry, length = tuple_entries(annotation)
        low, high = (length, length) if length is not None else _lengths(bounds)
        return isinstance(value, tuple) and low <= len(value) <= high and all(_valid(entry, bounds, v) for v in value)
    raise TypeError(f"{annotation!r}: not a setting type (float, int, bool, str, Literal or a tuple of these)")


def is_number(value) -> bool:
    """A finite real number (ints and floats; not bools)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _within(bounds: Mapping[str, float], value) -> bool:
    return all(NUMBER_BOUNDS[k][0](value, b) for k, b in bounds.items() if k in NUMBER_BOUNDS)


def _lengths(bounds: Mapping[str, float]) -> tuple[float, float]:
    return bounds.get("min_length", 0), bounds.get("max_length", float("inf"))


def _allowed(annotation, bounds: Mapping[str, float]) -> str:
    """What a setting accepts, as the end of an error message."""
    if typing.get_origin(annotation) is Literal:
        return f"unknown; allowed: {list(typing.get_args(annotation))}"
    return f"must be {_describe(annotation, bounds)}"


def _describe(annotation, bounds: Mapping[str, float]) -> str:
    limits = "".join(f" {NUMBER_BOUNDS[k][1]} {b}" for k, b in bounds.items() if k in NUMBER_BOUNDS)
    if annotation is float:
        return "a finite number" + limits
    if annotation is int:
        return "an integer" + limits
    if annotation is bool:
        return "true or false"
    if annotation is str:
        return "a string"
    if typing.get_origin(annotation) is Literal:
        return f"one of {list(typing.get_args(annotation))}"
    entry, length = tuple_entries(annotation)
    low, high = (length, length) if length is not None else _lengths(bounds)
    if low == high:
        length = f" of length {low}"
    elif high == float("inf"):
        length = f" of length >= {low}" if low else ""
    else:
        length = f" of length {low} to {high}"
    return f"a tuple{length}, each entry {_describe(entry, bounds)}"
