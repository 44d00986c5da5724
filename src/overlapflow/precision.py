r"""Float64 where overlapflow needs it, without changing the JAX settings of the process that imports it.

Decision. Importing overlapflow changes no global JAX setting. Each public entry point whose results
depend on float64 (the overlap theory, exactness checks, sampling vectors with a prescribed Gram
matrix, gauge and invariant computations) runs inside a *scoped* float64 context: it is decorated
with :func:`float64`, which enters ``jax.enable_x64(True)`` for the duration of the call and
restores the caller's setting on return (or on an exception).

Why scoped, not global:

- a library must not flip a user's process to float64: ``jax_enable_x64`` changes the default dtype
  of every array, every ``jnp`` function and every jitted function of everything else the user runs
  (other libraries included), doubling memory and slowing GPUs down;
- full networks default to float32 anyway (:meth:`~overlapflow.LowRankRNN.init`, as the paper): only
  the overlap side needs float64, and it gets it wherever it is computed by overlapflow;
- a scope is explicit and local: the same call gives the same numbers whatever the caller's setting
  (inside the scope JAX behaves as it did when importing overlapflow enabled float64 globally).

What a user sees:

- overlap results come back in float64: Histories (``xarray.Dataset``), numpy arrays, and float64
  JAX arrays (``Overlaps.matrix``, :func:`~overlapflow.sample_params`, ``rnn.init(..., dtype=jnp.float64)``,
  :func:`~overlapflow.gauge.function_coordinates`); ``np.asarray`` of any of them is float64;
- arrays a user builds *outside* the scope follow the user's setting: float32 unless they enable
  float64 themselves, with the one line ``jax.config.update("jax_enable_x64", True)`` (at the start of
  the program, before any array is made). JAX arithmetic on a returned float64 JAX array outside the
  scope, with float64 off, is done in float32 (JAX warns); take ``np.asarray`` first, or enable
  float64, or compute inside ``with overlapflow.precision.float64_scope():``;
- float32 inputs stay float32 where the computation follows the input's dtype (``network_forward`` of a
  float32 theta runs in float32, as before);
- the scope is JAX's: thread-local. Work an entry point hands to other threads or processes enables
  float64 there itself (the A/B -> C worker processes and the sweep's Dask tasks do).

The ``overlapflow`` command line is its own process and enables float64 globally at start
(:func:`enable_globally`), as do the worker processes overlapflow starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import jax

__all__ = ["enable_globally", "float64", "float64_scope"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def float64_scope():
    """A context manager: JAX with float64 enabled inside the ``with`` block (``jax.enable_x64(True)``),
    the previous setting restored after it. Thread-local, like every JAX configuration context."""
    return jax.enable_x64(True)


def float64(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator: run ``function`` with JAX float64 enabled for the call (:func:`float64_scope`).

    Keeps the name, docstring and signature (``functools.wraps``). Nested calls are cheap (the
    context is entered again with the same value). Applied under ``@classmethod`` for class methods.
    """

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with jax.enable_x64(True):
            return function(*args, **kwargs)

    return wrapper


def enable_globally() -> None:
    """Enable float64 for the whole process: ``jax.config.update("jax_enable_x64", True)``.

    For processes overlapflow owns (the command line, its worker processes) and for users who want
    float64 arrays everywhere; a library function never calls it in the caller's process."""
    jax.config.update("jax_enable_x64", True)
