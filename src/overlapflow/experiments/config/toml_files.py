"""TOML in and out: reading a TOML file or text (:func:`read_toml`, :func:`parse_toml`, the one
place a TOML syntax error becomes a problem line) and writing one (:func:`dumps_toml`, with
``tomli_w``). Experiment configs, sweep files and the commands all read TOML here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import tomli_w

from .messages import ConfigError


class TomlFile(NamedTuple):
    """A TOML file as read: its ``text`` and its ``data`` (the table it holds)."""

    text: str
    data: dict


def read_toml(path, error: type[ConfigError] = ConfigError) -> TomlFile:
    """Read a TOML file; a file that cannot be read or parsed raises ``error`` (a :class:`ConfigError`
    class) with one line at ``(file)``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as problem:
        raise error([("(file)", str(path), f"cannot be read ({problem.strerror or problem})")]) from None
    return TomlFile(text, parse_toml(text, str(path), error, field="(file)"))


def parse_toml(
    text: str, source: str | None = None, error: type[ConfigError] = ConfigError, *, field: str = "(text)"
) -> dict:
    """The table TOML ``text`` holds; a syntax error raises ``error`` with one line at ``field``
    naming ``source`` (where the text came from) and the line and column of the error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as problem:
        raise error([(field, source or "<string>", f"not valid TOML: {problem}")], source=source) from None


def dumps_toml(data: Mapping) -> str:
    """Write a dict of plain values as TOML (None values are left out: TOML has no null)."""
    return tomli_w.dumps(_without_none(data))


def _without_none(value):
    """``value`` with the None entries of every table in it left out."""
    if isinstance(value, Mapping):
        return {key: _without_none(v) for key, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_without_none(v) for v in value]
    return value
