"""The field types every config table is made of: :class:`StrictModel` (no silent conversions,
no unknown keys), bounded integers, finite numbers, a registered nonlinearity; and
:func:`unwrap`, which reads a field's type and description back from its annotation.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ...nonlinearity import REGISTRY

#: The dtypes of the full network.
DTYPES = ("float32", "float64")
#: The largest seed (a signed 64-bit integer).
MAX_SEED = 2**63 - 1


def bounded_int(low: int, high: int, description: str):
    return Annotated[int, Field(ge=low, le=high, description=description)]


def finite_number(description: str, **bounds):
    return Annotated[float, Field(allow_inf_nan=False, description=description, **bounds)]


def _registered_phi(name: str) -> str:
    if name not in REGISTRY:
        raise ValueError(f"unknown nonlinearity; allowed: {', '.join(REGISTRY)}")
    return name


#: A nonlinearity by name: one of :data:`overlapflow.nonlinearity.REGISTRY` when the config is read.
Phi = Annotated[str, AfterValidator(_registered_phi), Field(description="the nonlinearity")]
Number = finite_number("a finite number")


class StrictModel(BaseModel):
    # strict: no silent conversions (a string is not a number, a bool is not an integer);
    # integers are accepted where floats are expected.
    model_config = ConfigDict(extra="forbid", strict=True)


def unwrap(annotation, description=None):
    """Strip Annotated / Optional: (type, the innermost description found in Field metadata, else ``description``)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            args = typing.get_args(annotation)
            for meta in args[1:]:
                description = getattr(meta, "description", None) or description
            annotation = args[0]
        elif origin in (Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        else:
            return annotation, description
