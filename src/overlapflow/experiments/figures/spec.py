"""The types of the figures: :class:`FigureSpec` (where a figure's data come from, how it is drawn),
:class:`KeyNumber`, :class:`FigureResult` and :class:`FigureUnavailable`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xarray as xr


class FigureUnavailable(LookupError):
    """The figure is unknown, or has no experiment config of its own."""


@dataclasses.dataclass(frozen=True)
class KeyNumber:
    """One number of a figure: this run's value, the paper's (value or statement) and a note."""

    name: str
    value: float
    paper: float | str | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "paper": self.paper, "note": self.note}


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """A paper figure: where its data come from, how it is drawn, and what ``--quick`` changes.

    Exactly one source:

    - ``config``: a shipped experiment config (``configs/<config>``), run by ``run_experiment``;
      its setup is the :class:`ExperimentConfig`, and ``quick`` holds arguments of
      :meth:`ExperimentConfig.scaled`.
    - ``run``: ``run(settings, out, progress) -> {name: Dataset}``, a runner built on the phenomena
      APIs that leaves each Dataset in ``out/<name>.nc``; its setup is ``settings`` (a frozen
      dataclass whose defaults are the paper's values, or None), and ``quick`` holds the fields
      ``--quick`` replaces (:func:`dataclasses.replace`).

    ``draw(data, setup, out) -> (Figure, [KeyNumber])`` draws either. ``folder`` names the default
    output folder ``overlapflow-<folder>`` (and the subfolder of ``reproduce all --out DIR``);
    figures that share data share it (default ``fig<id>``). ``seconds``: (``--quick``, the paper's
    settings), the wall time of ``overlapflow reproduce FIG`` in an empty folder on a 2-core CPU,
    as measured or estimated (the registry says which); ``reproduce --list`` shows them and a
    full-scale figure says its own when it starts.
    """

    id: str
    title: str
    config: str | None = None
    draw: Callable | None = None
    quick: dict = dataclasses.field(default_factory=dict)
    run: Callable[[Any, Path, bool], dict[str, xr.Dataset]] | None = None
    settings: Any = None
    folder: str = ""
    seconds: tuple[float, float] | None = None

    def __post_init__(self):
        if (self.config is None) == (self.run is None):
            raise ValueError(f"figure {self.id}: give exactly one of config and run")
        if self.draw is None:
            raise ValueError(f"figure {self.id}: no draw function")
        if not self.folder:
            object.__setattr__(self, "folder", f"fig{self.id}")

    @property
    def source(self) -> str:
        """``configs/<name>.toml``, or the runner's name."""
        return f"configs/{self.config}" if self.config else f"{self.run.__name__}()"


@dataclasses.dataclass
class FigureResult:
    fig: str
    out: Path
    numbers: list[KeyNumber]
    files: list[Path]
    data: dict[str, xr.Dataset]
