"""Problems and their messages: :class:`ConfigError`, one line per problem naming the field, its
value and what is allowed (``field.path: value X: what is allowed``).

Each kind of error becomes problems here: pydantic's errors (:func:`pydantic_problems`, for the
experiment config and the sweep file alike) and a task's own :class:`~overlapflow.tasks.fields.TaskSettingError`
(:func:`task_problem`). Paths write their keys as TOML does (:func:`toml_key`).
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Mapping

from pydantic import BaseModel, ValidationError

from ...tasks import TASKS
from ...tasks.fields import TaskSettingError
from .field_types import unwrap
from .task_tables import TaskTable, task_config_model


class ConfigError(ValueError):
    """An invalid experiment config. ``problems`` lists (path, value, what is allowed); the message
    has one line per problem, ``path: value X: what is allowed``."""

    def __init__(self, problems, source: str | None = None):
        self.problems = [(str(p), v, str(a)) for p, v, a in problems]
        self.source = source
        where = f" {source}" if source else ""
        count = len(self.problems)
        lines = [f"{path}: value {show(value)}: {allowed}" for path, value, allowed in self.problems]
        super().__init__(
            f"invalid experiment config{where} ({count} problem{'s' if count != 1 else ''}):\n  " + "\n  ".join(lines)
        )


class _Missing:
    def __repr__(self):
        return "(missing)"


#: The value of a problem whose field is not given.
MISSING = _Missing()


def show(value) -> str:
    """A problem's value as its line shows it: the repr, at most 80 characters."""
    if value is MISSING:
        return "(missing)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: str) -> str:
    """A key as TOML writes it: bare (letters, digits, _ and -), else quoted (``"phases.0.lr"``)."""
    return key if _BARE_KEY.match(key) else json.dumps(key)


# ---------------------------------------------------------------------------- pydantic errors
def pydantic_problems(
    error: ValidationError, data, root: type[BaseModel], *, allowed_keys: str = "allowed keys here"
) -> list:
    """pydantic's errors validating ``data`` against ``root``, as problems: (the field's path, its
    value, what is allowed, with the field's description). ``allowed_keys`` begins the list of the
    keys a table has, after an unknown key."""
    problems = []
    for err in error.errors(include_url=False):
        kind, loc = err["type"], err["loc"]
        path, parent, description = _field_at(root, loc, data)
        if kind == "extra_forbidden":
            problems.append((path, err.get("input"), f"unknown key; {allowed_keys}: {_allowed_keys(parent)}"))
        elif kind == "missing":
            problems.append((path, MISSING, f"required ({description})" if description else "required"))
        elif kind == "task_kind":
            problems.append((f"{path}.kind", err["input"].get("kind", MISSING), err["msg"]))
        elif kind in ("task_table", "model_attributes_type"):
            problems.append(
                (path, err.get("input", MISSING), f"must be a table{f' ({description})' if description else ''}")
            )
        else:
            message = err["msg"]
            message = re.sub(r"^Input should be ", "must be ", message)
            message = re.sub(r"^Value error, ", "", message)
            if description and description not in message:
                message = f"{message} ({description})"
            problems.append((path, err.get("input", MISSING), message))
    return problems


def _field_at(root: type[BaseModel], loc, data):
    """Walk an error location through the models from ``root`` and the data they were given.

    Returns (display path, the model holding the last key or None, the description of the last
    field). A task table is walked with the model of the kind its data names."""
    current, description, node = root, None, data
    path, parent = [], None
    for item in loc:
        path.append(toml_key(str(item)))
        if current is TaskTable:
            kind = node.get("kind") if isinstance(node, Mapping) else None
            current = task_config_model(TASKS[kind]) if isinstance(kind, str) and kind in TASKS else None
        node = _entry(node, item)
        if isinstance(current, type) and issubclass(current, BaseModel):
            parent = current
            info = _field_named(current, item)
            if info is None:
                current, description = None, None
                continue
            current, description = unwrap(info.annotation, info.description)
        elif typing.get_origin(current) in (list, dict):
            current, description = unwrap(typing.get_args(current)[-1], description)
            parent = None
        else:
            current = None
    return ".".join(path), parent, description


def _field_named(model: type[BaseModel], key):
    """The field of ``model`` a key of its table names (by alias, else by name), or None."""
    fields = model.model_fields.values()
    return next((info for info in fields if info.alias == key), None) or model.model_fields.get(key)


def _entry(node, key):
    """node[key] for a table or an array, else None."""
    if isinstance(node, Mapping):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node):
        return node[key]
    return None


def _allowed_keys(model) -> str:
    """The keys of a model's table (aliases where they have one)."""
    return ", ".join(info.alias or name for name, info in model.model_fields.items()) if model is not None else "?"


# ---------------------------------------------------------------------------- a task's errors
def task_problem(path: str, table: TaskTable, error: Exception) -> tuple:
    """A task's error building or checking the task of ``table`` (at ``path``) as a problem: a
    :class:`~overlapflow.tasks.fields.TaskSettingError` of a key of the table at ``path.key`` (its value
    as the table gives it), any other error at the table."""
    if isinstance(error, TaskSettingError) and error.field in type(table).model_fields:
        return (f"{path}.{error.field}", getattr(table, error.field), error.allowed)
    return (path, table.model_dump(), str(error))
