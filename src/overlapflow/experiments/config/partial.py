"""Partial configs: a config built from the fields that passed their own checks, so that every
check of meaning whose inputs passed still runs when other fields have problems (one pass finds
every problem). A field with a problem holds :data:`INVALID`; :func:`ok` tells a value that passed.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

from pydantic import BaseModel, ValidationError

from .field_types import unwrap
from .task_tables import TaskTable


class _Invalid:
    def __repr__(self):
        return "(invalid)"


#: The value of a field that failed its own checks, in a partial config (:func:`partial`).
INVALID = _Invalid()


class Errors:
    """The locations of pydantic's errors: a path is valid when no error lies inside it or on a table above it."""

    def __init__(self, locs):
        self.locs = [tuple(loc) for loc in locs]

    def valid(self, path: tuple) -> bool:
        return not any(loc[: len(path)] == path or path[: len(loc)] == loc for loc in self.locs)

    def at(self, path: tuple) -> bool:
        """An error on the value at path itself (its type or length), not only inside it."""
        return path in self.locs


def partial(model: type[BaseModel], data: Mapping, errors: Errors, path: tuple = ()) -> BaseModel:
    """``model`` built without validation from the fields of ``data`` that passed their checks:
    each valid field validated on its own; a table (or an array of tables) with problems inside it
    built the same way; any other field with problems, or a required one missing, :data:`INVALID`."""
    values = {}
    for name, info in model.model_fields.items():
        if name not in data:
            if info.is_required():
                values[name] = INVALID
            continue
        value, where = data[name], (*path, name)
        if errors.valid(where):
            values[name] = _validated(model, name, value)
            continue
        inner, _ = unwrap(info.annotation)
        item = unwrap(typing.get_args(inner)[0])[0] if typing.get_origin(inner) is list else None
        if _is_table(item) and isinstance(value, list) and not errors.at(where):
            values[name] = [_partial_table(item, v, errors, (*where, j)) for j, v in enumerate(value)]
        else:
            values[name] = _partial_table(inner, value, errors, where)
    return model.model_construct(**values)


def _is_table(model) -> bool:
    """A config model whose fields are checked one by one (a task table is checked as a whole)."""
    return isinstance(model, type) and issubclass(model, BaseModel) and not issubclass(model, TaskTable)


def _partial_table(model, value, errors: Errors, path: tuple):
    """A table's value: validated if it passed, partial if its problems lie inside it, else INVALID."""
    if not (_is_table(model) and isinstance(value, Mapping)):
        return INVALID
    if errors.valid(path):
        try:
            return model.model_validate(value)
        except ValidationError:  # pragma: no cover - it passed as a part of the whole config
            return INVALID
    return INVALID if errors.at(path) else partial(model, value, errors, path)


def _validated(model: type[BaseModel], name: str, value):
    """One field of ``model`` validated alone (its validators included)."""
    instance = model.model_construct()
    try:
        model.__pydantic_validator__.validate_assignment(instance, name, value)
    except ValidationError:  # pragma: no cover - it passed as a part of the whole config
        return INVALID
    return getattr(instance, name)


def ok(value) -> bool:
    """Whether a value of a (possibly partial) config passed its checks, every field inside it too."""
    if value is INVALID:
        return False
    if isinstance(value, BaseModel):
        return all(ok(getattr(value, name, INVALID)) for name in type(value).model_fields)
    if isinstance(value, list):
        return all(ok(v) for v in value)
    return True
