"""A task's checks raise TaskSettingError (task, field, value, allowed; one line), and a config reads
those attributes to report the problem at that key of the task's table: no parsing of the message."""

from __future__ import annotations

import pickle

import pytest

from overlapflow.experiments.config import ConfigError, parse_config, task_config_model
from overlapflow.experiments.config.messages import task_problem
from overlapflow.tasks import FlipFlop, Teacher
from overlapflow.tasks.fields import TaskSettingError


def test_the_error_names_task_field_value_and_what_is_allowed_in_one_line():
    with pytest.raises(TaskSettingError) as caught:
        FlipFlop(first_pulse=30.0, t_max=20.0)
    error = caught.value
    assert (error.task, error.field, error.value) == ("FlipFlop", "first_pulse", 30.0)
    assert str(error) == f"FlipFlop.first_pulse = 30.0: {error.allowed}" and "\n" not in str(error)
    assert isinstance(error, ValueError)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)  # crosses process boundaries intact


def test_an_entry_of_a_setting_and_a_value_left_out_of_the_line():
    with pytest.raises(TaskSettingError, match=r"^Teacher\.overlaps\['zm'\] = 'x': must be a finite number$") as caught:
        Teacher(overlaps=(("zm", "x"),))
    assert (caught.value.field, caught.value.entry, caught.value.value) == ("overlaps", "['zm']", "x")
    with pytest.raises(TaskSettingError, match=r"^Teacher\.overlaps: ") as caught:
        Teacher(overlaps=(("nope", 1.0),))
    assert not caught.value.show_value


def test_a_config_reports_the_error_at_the_key_whatever_the_value_or_message_holds():
    """The teacher's own check of its overlaps' labels, at the table's key; and a value and an allowed
    text with ': ' in them (a parser of the message would split them at the wrong place)."""
    data = {"N": 20, "phases": [{"epochs": 1, "lr": 1e-3, "task": {"kind": "teacher", "overlaps": {"nope": 1.0}}}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    [(path, value, allowed)] = caught.value.problems
    assert (path, value) == ("phases.0.task.overlaps", {"nope": 1.0}) and "nope" in allowed
    table = task_config_model(Teacher).model_validate({"kind": "teacher", "overlaps": {"zm": 0.5}})
    error = TaskSettingError("Teacher", "overlaps", {"zm": 0.5}, "must name uu: {uu = 1.0}")
    assert task_problem("task", table, error) == ("task.overlaps", {"zm": 0.5}, "must name uu: {uu = 1.0}")


def test_an_error_of_a_field_the_table_does_not_have_is_reported_at_the_table():
    table = task_config_model(Teacher).model_validate({"kind": "teacher"})
    error = TaskSettingError("Teacher", "rnn", None, "must be a network")
    assert task_problem("task", table, error) == ("task", table.model_dump(), "Teacher.rnn = None: must be a network")
