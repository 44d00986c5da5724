"""Optional dependencies (the extras of ``pyproject.toml``) and the one-line error when one is missing.

``pip install overlapflow`` installs what the library, ``overlapflow demo``, ``run``, ``validate``,
``validate-theory`` and ``reproduce`` need. Two features need more:

- ``sweep`` (dask, distributed, zarr): :func:`~overlapflow.experiments.run_sweep`, ``load_sweep`` and
  the ``overlapflow sweep`` command (``--status`` works without them);
- ``decode`` (scikit-learn): decoding the training history (``phenomena.memory.decode_pairs`` and the
  functions built on it; figures 9 and 10).

``pip install 'overlapflow[all]'`` installs every extra; the ``test`` extra pulls what the tests need.
"""

from __future__ import annotations

import importlib

#: extra -> (pip name, import name) of each package it adds.
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "sweep": (("dask", "dask"), ("distributed", "distributed"), ("zarr", "zarr")),
    "decode": (("scikit-learn", "sklearn"),),
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the pip command that installs it."""


def missing(extra: str) -> list[str]:
    """The pip names of the packages of ``extra`` that cannot be imported."""
    absent = []
    for pip_name, module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            absent.append(pip_name)
    return absent


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` ("WHAT needs dask, zarr: pip install 'overlapflow[sweep]'") unless every
    package of ``extra`` imports."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(f"{what} needs {', '.join(absent)}: pip install 'overlapflow[{extra}]'")
