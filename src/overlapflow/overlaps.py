r"""Overlaps: the named Gram matrix of the connectivity vectors, and which entries the loss sees.

    S = theta^T theta / N       (P, P), symmetric positive semi-definite

Entries are named by vector pairs: ``S["z", "m"]`` = sigma_zm = z.m / N. A pair's label joins the
two names, later vector first (``"zm"``, ``"vu"``, ``"u2u1"``); labels are read in either order.

Visible and invisible overlaps (theory section 4). The reduced activity reads

- linear phi: only the cross block S[A, B] (A = [V | Z], B = [M | U]);
- nonlinear phi: S[A, B] and S[B, B] (the variance Delta = k^T S[B, B] k of the currents).

Those entries fix activity, output and loss (*visible*); the rest (S[A, A], and S[B, B] for a
linear network) change nothing the network does (*invisible*) but enter the learning dynamics.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .model import LowRankRNN
from .precision import float64

_NAME = re.compile(r"[a-z]\d*")


def canonical_pairs(P: int) -> list[tuple[int, int]]:
    """Distinct index pairs (i, j), i >= j, of a (P, P) matrix: i from P-1 down, j from 0 up."""
    return [(i, j) for i in range(P - 1, -1, -1) for j in range(i + 1)]


def pair_indices(rnn: LowRankRNN) -> list[tuple[int, int]]:
    """All distinct pairs (i, j), i >= j, in the canonical order (z first, then v, u, m)."""
    return canonical_pairs(rnn.n_vectors)


def pair_label(rnn: LowRankRNN, i: int, j: int) -> str:
    names = rnn.vector_names
    i, j = max(i, j), min(i, j)
    return names[i] + names[j]


def parse_pair(names: tuple[str, ...], label: str) -> tuple[int, int]:
    """Indices (i, j) of a pair label such as ``"zm"``, ``"mu"`` or ``"u1v2"`` among vector names."""
    parts = _NAME.findall(label) if isinstance(label, str) else []
    if len(parts) != 2 or "".join(parts) != label or any(p not in names for p in parts):
        raise ValueError(
            f"overlap label {label!r}: must join two vector names out of {list(names)}, e.g. {names[-1] + names[0]!r}"
        )
    return names.index(parts[0]), names.index(parts[1])


def visible_mask(rnn: LowRankRNN) -> np.ndarray:
    """Boolean (P, P) mask of the loss-visible entries of S (symmetric)."""
    P, sl = rnn.n_vectors, rnn.slices
    mask = np.zeros((P, P), dtype=bool)
    mask[sl["A"], sl["B"]] = True
    mask[sl["B"], sl["A"]] = True
    if not rnn.is_linear:
        mask[sl["B"], sl["B"]] = True
    return mask


def visible_pairs(rnn: LowRankRNN) -> list[tuple[int, int]]:
    """Index pairs (i, j), i >= j, of the loss-visible overlaps in the canonical order."""
    mask = visible_mask(rnn)
    return [(i, j) for i, j in pair_indices(rnn) if mask[i, j]]


def visible_names(rnn: LowRankRNN) -> list[str]:
    """Labels of the loss-visible overlaps, e.g. ``["zm", "zu", "vm", "vu"]`` (rank 1, linear)."""
    return [pair_label(rnn, i, j) for i, j in visible_pairs(rnn)]


def invisible_names(rnn: LowRankRNN) -> list[str]:
    """Labels of the loss-invisible overlaps, e.g. ``["zv", "zz", "vv", "um", "uu", "mm"]``."""
    mask = visible_mask(rnn)
    return [pair_label(rnn, i, j) for i, j in pair_indices(rnn) if not mask[i, j]]


def check_gram(S, field: str = "S", rtol: float = 1e-8) -> None:
    """Raise ValueError unless S is a finite, symmetric, positive semi-definite square matrix."""
    S = np.asarray(S, dtype=float)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"{field}: shape {S.shape}; must be a square (P, P) matrix")
    if not np.all(np.isfinite(S)):
        raise ValueError(f"{field}: contains NaN or Inf; must be finite")
    scale = max(1.0, float(np.max(np.abs(S))))
    asym = float(np.max(np.abs(S - S.T)))
    if asym > rtol * scale:
        raise ValueError(
            f"{field}: not symmetric (largest |S - S^T| = {asym:.3g}); an overlap matrix must be symmetric"
        )
    low = float(np.linalg.eigvalsh((S + S.T) / 2)[0])
    if low < -rtol * scale * S.shape[0]:
        raise ValueError(
            f"{field}: not positive semi-definite (smallest eigenvalue {low:.6g}); no set of vectors has these overlaps"
        )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Overlaps:
    """The named (P, P) Gram matrix S = theta^T theta / N of one network.

    A JAX PyTree (``matrix`` is the leaf). Index by names: ``S["z", "m"]``, ``S["zm"]``,
    ``S["u2", "v1"]``.

    Example:
        >>> import overlapflow as of
        >>> rnn = of.LowRankRNN(rank=1)  # vectors m, u, v, z: P = 4
        >>> S = of.Overlaps.from_dict(rnn, {"zm": 0.5, "uu": 2.0})  # the rest: 0, diagonal 1
        >>> S.names, S.matrix.shape
        (('m', 'u', 'v', 'z'), (4, 4))
        >>> float(S["z", "m"]), float(S["mz"]), float(S["uu"]), float(S["vm"])
        (0.5, 0.5, 2.0, 0.0)
        >>> of.visible_names(rnn)  # the overlaps the loss reads; the other six are invisible
        ['zm', 'zu', 'vm', 'vu']
    """

    matrix: Float[Array, "P P"]
    names: tuple[str, ...] = dataclasses.field(metadata=dict(static=True))

    @classmethod
    @float64
    def from_params(cls, rnn: LowRankRNN, theta: Float[ArrayLike, "N P"]) -> Overlaps:
        """S = theta^T theta / N in float64 from theta of shape (N, P) (any float dtype)."""
        theta = jnp.asarray(theta, dtype=jnp.float64)
        if theta.ndim != 2 or theta.shape[1] != rnn.n_vectors:
            raise ValueError(f"theta: shape {theta.shape}; must be (N, P) with P = {rnn.n_vectors} for this network")
        return cls(theta.T @ theta / theta.shape[0], rnn.vector_names)

    @classmethod
    @float64
    def from_matrix(cls, rnn: LowRankRNN, S: Float[ArrayLike, "P P"]) -> Overlaps:
        """Wrap and validate a (P, P) matrix (symmetric, positive semi-definite); stored in float64."""
        S = np.asarray(S, dtype=float)
        if S.shape != (rnn.n_vectors, rnn.n_vectors):
            raise ValueError(f"S: shape {S.shape}; must be ({rnn.n_vectors}, {rnn.n_vectors}) for this network")
        check_gram(S)
        return cls(jnp.asarray((S + S.T) / 2), rnn.vector_names)

    @classmethod
    def from_dict(cls, rnn: LowRankRNN, values: dict[str, float], default_diagonal: float = 1.0) -> Overlaps:
        """Build S from labels, e.g. ``{"zm": 0.1, "uu": 2.0}``; missing entries are 0 (diagonal: 1)."""
        P = rnn.n_vectors
        S = np.eye(P) * default_diagonal
        for label, value in values.items():
            i, j = parse_pair(rnn.vector_names, label)
            S[i, j] = S[j, i] = value
        return cls.from_matrix(rnn, S)

    def _index(self, key) -> tuple[int, int]:
        if isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key):
            key = "".join(key)
        try:
            return parse_pair(self.names, key)
        except ValueError as error:
            raise KeyError(
                f"{key!r}: index overlaps by two vector names, e.g. S['z', 'm'] or S['zm'] ({error})"
            ) from None

    def __getitem__(self, key) -> jax.Array:
        i, j = self._index(key)
        return self.matrix[i, j]

    def as_dict(self) -> dict[str, float]:
        """All distinct overlaps by label, in the canonical order."""
        return {self.names[i] + self.names[j]: float(self.matrix[i, j]) for i, j in canonical_pairs(len(self.names))}

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v:.4g}" for k, v in self.as_dict().items())
        return f"Overlaps({items})"


@float64
def sample_params(
    rnn: LowRankRNN, S: Overlaps | Float[ArrayLike, "P P"], N: int, key: PRNGKeyArray, dtype=jnp.float64
) -> Float[Array, "N P"]:
    """Random vectors theta (N, P) whose Gram matrix theta^T theta / N is exactly S.

    theta = sqrt(N) Q diag(sqrt(lambda)) E^T, where S = E diag(lambda) E^T and Q (N, P) has
    orthonormal columns drawn uniformly (QR of a Gaussian matrix). The rows of theta are then
    spherically distributed with second moment S, as the large-N Gaussian theory assumes.
    """
    S = S.matrix if isinstance(S, Overlaps) else S
    S = np.asarray(S, dtype=float)
    P = rnn.n_vectors
    if S.shape != (P, P):
        raise ValueError(f"S: shape {S.shape}; must be ({P}, {P}) for this network")
    check_gram(S)
    if isinstance(N, bool) or not isinstance(N, int) or N < P:
        raise ValueError(f"N = {N!r}: must be an integer >= P = {P}")
    lam, E = np.linalg.eigh((S + S.T) / 2)
    lam = np.clip(lam, 0.0, None)
    gauss = jax.random.normal(key, (N, P), dtype=jnp.float64)
    Q, R = jnp.linalg.qr(gauss)
    Q = Q * jnp.sign(jnp.diag(R))  # uniform (Haar) orientation
    theta = jnp.sqrt(N) * (Q * jnp.sqrt(lam)) @ E.T
    return theta.astype(dtype)
