"""Making a figure (:func:`reproduce_figure`): run or reuse its data, draw it, and write its key numbers
(``summary.txt``, ``figFIG.json``)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from ...precision import float64
from . import registry  # registry.FIGURES, read at each call (as its lookups do)
from .data import run_config
from .drawing import save_figure
from .registry import default_folder, figure_id, figure_setup
from .spec import FigureResult, KeyNumber


@float64
def reproduce_figure(fig: str, quick: bool = False, out=None, progress: bool = False) -> FigureResult:
    """Make a figure in ``out`` (default :func:`default_folder`): run, continue or reuse its data, draw it
    and write its key numbers next to the paper's; returns them and the files written."""
    fig = figure_id(fig)
    spec = registry.FIGURES[fig]
    setup = figure_setup(fig, quick)
    out = Path(out) if out is not None else default_folder(fig, quick)
    sections = _summary_sections(out)
    if spec.config is not None:
        data = run_config(setup, out, progress)
    else:
        out.mkdir(parents=True, exist_ok=True)
        data = spec.run(setup, out, progress)
    figure, numbers = spec.draw(data, setup, out)
    files = save_figure(figure, out, f"fig{fig}")
    settings = None if spec.config is not None or setup is None else dataclasses.asdict(setup)
    record = {
        "figure": fig,
        "title": spec.title,
        "quick": quick,
        "config": spec.config,
        "source": spec.source,
        "settings": settings,
        "numbers": [n.as_dict() for n in numbers],
    }
    (out / f"fig{fig}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    header = f"key numbers of fig {fig}{' (--quick)' if quick else ''}: {spec.title}\n"
    if settings is not None:
        header += f"  settings ({spec.source}): {json.dumps(settings)}\n"
    sections[fig] = header + format_numbers(numbers) + "\n"
    write_summary(out, sections)
    files += [out / f"fig{fig}.json", out / "summary.txt"] + [out / f"{name}.nc" for name in data]
    return FigureResult(fig, out, numbers, files, data)


_SECTION = re.compile(r"^key numbers of fig (\w+)", re.M)


def _split_summary(text: str) -> tuple[str, dict[str, str]]:
    """summary.txt as (the run's part, {figure: its section of key numbers})."""
    starts = [(m.start(), m.group(1)) for m in _SECTION.finditer(text)]
    ends = [start for start, _ in starts[1:]] + [len(text)]
    sections = {fig: text[start:end].strip("\n") + "\n" for (start, fig), end in zip(starts, ends, strict=False)}
    return text[: starts[0][0] if starts else len(text)], sections


def _summary_sections(out: Path) -> dict[str, str]:
    path = out / "summary.txt"
    return _split_summary(path.read_text(encoding="utf-8"))[1] if path.is_file() else {}


def write_summary(out: Path, sections: dict[str, str]) -> None:
    """summary.txt: the run's summary (if a config run wrote one), then the key numbers of every figure
    made in this folder, in the paper's order (a figure made again replaces its own section)."""
    path = out / "summary.txt"
    base, current = _split_summary(path.read_text(encoding="utf-8")) if path.is_file() else ("", {})
    merged = {**current, **sections}
    ordered = [merged[fig] for fig in registry.FIGURES if fig in merged]
    path.write_text(base.rstrip("\n") + ("\n\n" if base.strip() else "") + "\n".join(ordered), encoding="utf-8")


def _format_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) or float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value)}" if float(value).is_integer() else f"{value:.6g}"
    return f"{value:.6g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.3e}"


def format_numbers(numbers: list[KeyNumber]) -> str:
    """The key numbers as aligned text: name, this run, paper, note."""
    width = max(len(n.name) for n in numbers)
    lines = [f"  {'quantity':<{width}}  {'this run':>12}  {'paper':>12}  note"]
    for n in numbers:
        lines.append(
            f"  {n.name:<{width}}  {_format_value(n.value):>12}  {_format_value(n.paper):>12}  {n.note}".rstrip()
        )
    return "\n".join(lines)
