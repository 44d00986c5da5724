"""Task tables: the model of each registered task's TOML table, made from the task's own settings
(:meth:`~overlapflow.tasks.AbstractTask.config_fields`), so a task registered under a new kind is
usable in configs at once. ``kind`` names the task; the other keys are its settings.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SerializeAsAny, create_model
from pydantic_core import PydanticCustomError

from ...model import LowRankRNN
from ...nonlinearity import Nonlinearity
from ...tasks import TASKS, AbstractTask
from ...tasks.fields import LENGTH_BOUNDS, NUMBER_BOUNDS, tuple_entries
from .field_types import Phi, StrictModel


class TaskTable(StrictModel):
    """A task table: ``kind`` names a registered task (:data:`~overlapflow.tasks.TASKS`) and the other
    keys are its settings (:meth:`~overlapflow.tasks.AbstractTask.config_fields`). Each kind has its
    own subclass, made from the task class by :func:`task_config_model`."""

    kind: str

    def build(self, rnn: LowRankRNN) -> AbstractTask:
        """The task, for the student network ``rnn`` (:meth:`~overlapflow.tasks.AbstractTask.from_config`)."""
        values = {name: getattr(self, name) for name in type(self).model_fields if name != "kind"}
        return TASKS[self.kind].from_config(rnn, **values)

    def __reduce__(self):
        # the per-kind models are made at run time, so a pickle holds the table and re-validates it
        return _task_table, (self.model_dump(),)


@functools.cache
def task_config_model(task: type[AbstractTask]) -> type[TaskTable]:
    """The model of a registered task's TOML table: ``kind``, then a field per setting (its type,
    default, description and bounds; tuples are TOML arrays)."""
    fields = {}
    for s in task.config_fields():
        default = ... if s.default is dataclasses.MISSING else _toml_default(s.default)
        fields[s.name] = (Annotated[_setting_type(s.type, s.bounds), Field(description=s.doc)], default)
    doc = f"The ``{task.kind}`` task table (:class:`~{task.__module__}.{task.__qualname__}`)."
    return create_model(
        f"{task.__name__}Config", __base__=TaskTable, __doc__=doc, kind=(Literal[task.kind], ...), **fields
    )


def _setting_type(annotation, bounds):
    """The pydantic type of a setting: numbers finite and within their bounds, tuples as lists,
    ``dict[str, X]`` as a table, :class:`~overlapflow.Nonlinearity` as a registered name."""
    numbers = {k: v for k, v in bounds.items() if k in NUMBER_BOUNDS}
    if annotation is float:
        return Annotated[float, Field(allow_inf_nan=False, **numbers)]
    if annotation is int:
        return Annotated[int, Field(**numbers)]
    if annotation is Nonlinearity:
        return Phi
    if annotation in (bool, str) or typing.get_origin(annotation) is Literal:
        return annotation
    if typing.get_origin(annotation) is tuple:
        entry, length = tuple_entries(annotation)
        lengths = {k: v for k, v in bounds.items() if k in LENGTH_BOUNDS}
        if length is not None:
            lengths = {"min_length": length, "max_length": length}
        return Annotated[list[_setting_type(entry, numbers)], Field(**lengths)]
    if typing.get_origin(annotation) is dict:
        key, value = typing.get_args(annotation)
        return dict[key, _setting_type(value, numbers)]
    raise TypeError(f"a task setting of type {annotation!r} has no TOML form")


def _toml_default(value):
    """A setting's default as read from TOML: tuples as lists."""
    return [_toml_default(v) for v in value] if isinstance(value, tuple) else value


def _task_table(value):
    """Validate a task table against the model of its kind, looked up in the registry when validating."""
    if isinstance(value, TaskTable):
        return value
    if not isinstance(value, Mapping):
        raise PydanticCustomError("task_table", "must be a table")
    kind = value.get("kind")
    if not (isinstance(kind, str) and kind in TASKS):
        raise PydanticCustomError("task_kind", "unknown task kind; allowed: {kinds}", {"kinds": ", ".join(TASKS)})
    return task_config_model(TASKS[kind]).model_validate(dict(value))


#: The registered task kinds (a live view of :data:`~overlapflow.tasks.TASKS`).
TASK_KINDS = TASKS.keys()
TaskConfig = Annotated[
    SerializeAsAny[TaskTable],
    BeforeValidator(_task_table),
    Field(description="kind = a registered task, and its settings"),
]
