"""The low-rank RNN architecture: sizes, vector names and order, dynamics constants.

A network of N neurons with rank R, ``n_in`` inputs and ``n_out`` outputs keeps all of its
connectivity in P = n_in + 2R + n_out vectors of length N, the columns of one matrix

    theta = [ M | U | V | Z ]   (N, P)

with W = U V^T / N the recurrent weights, M the input vectors and Z the readout vectors.
The *left* vectors B = [M | U] span the activity; the *right* vectors A = [V | Z] read it out.
In the column order used everywhere in overlapflow, B is the leading block of columns and A
the trailing one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .nonlinearity import Nonlinearity, get_nonlinearity
from .precision import float64

#: When the output is read: after the Euler step that receives x_t, or before it.
READOUTS = ("after", "before")


def _vector_names(prefix: str, count: int) -> tuple[str, ...]:
    if count == 1:
        return (prefix,)
    return tuple(f"{prefix}{i + 1}" for i in range(count))


@dataclasses.dataclass(frozen=True)
class LowRankRNN:
    """A rank-``rank`` recurrent network (architecture only; the vectors live in ``theta``).

    Dynamics (Euler discretisation of tau dh/dt = -h + U V^T phi(h) / N + M x):

        h_0     = 0
        h_{t+1} = h_t + (dt/tau) (-h_t + U V^T phi(h_t) / N + M x_t)
        y_t     = Z^T phi(h_{t+1}) / N      (readout "after", the default)
        y_t     = Z^T phi(h_t) / N          (readout "before")

    With ``readout = "after"`` the output at step t is read after the step that received x_t (an
    impulse x_0 shows at y_0; the authors' linear networks); with ``"before"`` it is read before
    that step (y_0 = 0; the authors' erf network, figs 4, 8-10).

    Args:
        rank: R >= 1, the number of (u, v) pairs.
        n_in: number of inputs (columns m).
        n_out: number of outputs (columns z).
        phi: ``"linear"``, ``"erf"`` (erf(sqrt(pi)/2 x)), ``"tanh"``, ``"relu"``, a JAX
            function R -> R, or a :class:`~overlapflow.Nonlinearity`.
        dt: Euler step.
        tau: time constant.
        readout: ``"after"`` or ``"before"`` the step (see above).
    """

    rank: int = 1
    n_in: int = 1
    n_out: int = 1
    phi: str | Callable | Nonlinearity = "linear"
    dt: float = 0.05
    tau: float = 1.0
    readout: str = "after"

    def __post_init__(self):
        for field in ("rank", "n_in", "n_out"):
            value = getattr(self, field)
            low = 1 if field == "rank" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"LowRankRNN.{field} = {value!r}: must be an integer >= {low}")
        if self.n_in + self.n_out == 0:
            raise ValueError("LowRankRNN: n_in = n_out = 0; a network needs an input or an output")
        for field in ("dt", "tau"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"LowRankRNN.{field} = {value!r}: must be a positive number")
        if self.readout not in READOUTS:
            raise ValueError(f"LowRankRNN.readout = {self.readout!r}: unknown; allowed: {list(READOUTS)}")
        # Resolve the nonlinearity once (raises a clear error for an unknown name).
        object.__setattr__(self, "phi", get_nonlinearity(self.phi))

    # ------------------------------------------------------------------ sizes and names
    @property
    def nonlinearity(self) -> Nonlinearity:
        return self.phi  # type: ignore[return-value]

    @property
    def is_linear(self) -> bool:
        return self.nonlinearity.is_linear

    @property
    def n_vectors(self) -> int:
        """P = n_in + 2 rank + n_out."""
        return self.n_in + 2 * self.rank + self.n_out

    @property
    def n_left(self) -> int:
        """Size of B = [M | U]: n_in + rank (the latent dimension of the activity)."""
        return self.n_in + self.rank

    @property
    def vector_names(self) -> tuple[str, ...]:
        """Column names of theta in order, e.g. ``("m", "u", "v", "z")`` at rank 1."""
        return (
            _vector_names("m", self.n_in)
            + _vector_names("u", self.rank)
            + _vector_names("v", self.rank)
            + _vector_names("z", self.n_out)
        )

    @property
    def slices(self) -> dict[str, slice]:
        """Column ranges of the blocks M, U, V, Z, B = [M|U] and A = [V|Z] in theta."""
        i, r = self.n_in, self.rank
        return {
            "M": slice(0, i),
            "U": slice(i, i + r),
            "V": slice(i + r, i + 2 * r),
            "Z": slice(i + 2 * r, self.n_vectors),
            "B": slice(0, i + r),
            "A": slice(i + r, self.n_vectors),
        }

    @property
    def alpha(self) -> float:
        """dt / tau, the Euler step in units of the time constant."""
        return self.dt / self.tau

    def describe(self) -> dict:
        """Settings as plain values (for History attributes and files)."""
        return {
            "rank": self.rank,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "phi": self.nonlinearity.name,
            "dt": float(self.dt),
            "tau": float(self.tau),
            "readout": self.readout,
        }

    # ------------------------------------------------------------------ initialisation
    @float64
    def init(self, key: PRNGKeyArray, N: int, dtype=jnp.float32) -> Float[Array, "N P"]:
        """Random connectivity theta, shape (N, P), in ``dtype`` (float32 by default, as the paper).

        Each column is i.i.d. standard Gaussian (drawn in float64), then rescaled to squared norm
        exactly N, so every diagonal overlap ||a||^2 / N equals 1. ``dtype=jnp.float64`` gives a float64
        array whatever the caller's JAX setting.
        """
        if isinstance(N, bool) or not isinstance(N, int) or N < self.n_vectors:
            raise ValueError(f"N = {N!r}: must be an integer >= P = {self.n_vectors}")
        x = jax.random.normal(key, (N, self.n_vectors), dtype=jnp.float64)
        x = x * jnp.sqrt(N / jnp.sum(x**2, axis=0))
        return x.astype(dtype)
