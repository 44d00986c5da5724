r"""The infinite-N engine: the law of the rows of theta, carried by weighted particles.

In a network of N neurons, row theta_i in R^P of neuron i only meets the other rows through
population averages (1/N) sum_j f(theta_j, ...). Gradient descent with rate eta N moves each row by
a deterministic function of itself and of those averages:

    theta_i <- theta_i - eta g(theta_i; mu_t),      mu_t = (1/N) sum_j delta_{theta_j}

As N -> infinity the rows are i.i.d. N(0, S_0) at the start, and mu_t becomes the push-forward of
N(0, S_0) through these updates: a deterministic law, the true large-N limit of learning. It is
not Gaussian in general (the Gaussian closure of :mod:`overlapflow.meanfield` assumes it stays so),
so its overlaps S_t = E_mu[theta theta^T] are computed here without that assumption.

Particles: a quadrature rule (theta_p, w_p) for N(0, S_0), sum_p w_p = 1. Population averages
become sum_p w_p f(theta_p), and each particle follows the per-row update. This is the network code
(:mod:`overlapflow.network`) with weights instead of 1/N; its cost depends on the number of
particles, never on N.

Rules (S_0 = E diag(lambda) E^T; only directions with lambda > 0 are sampled, d of them):

- ``"gauss-hermite"``: product Gauss-Hermite grid, ``nodes`` per direction, nodes^d particles.
  Exact for polynomials of degree < 2 nodes in each direction; spectrally accurate for smooth phi.
  Measured (rank 1, erf): 8^4 and 10^4 particles agree to about 1e-7 (tests/test_particles.py).
- ``"split"``: product Gauss-Hermite grids on the two blocks of a row, theta = (b, a) with b =
  (m, u) the n_in + R coordinates inside phi (h_i = sum_k b_ik k_k) and a = (v, z) the R + n_out
  coordinates that multiply phi(h) (module :mod:`overlapflow.network`): b = E_b diag(s_b) xi_b,
  a = A b + E_c diag(s_c) xi_c with A = S_ab S_bb^+ and the conditional covariance S_aa - A S_ba
  = E_c diag(s_c^2) E_c^T (exact second moments, degenerate S0 allowed). ``nodes`` per direction in
  b, ``right_nodes`` in a: a row's trajectory is smooth but far from polynomial in b, and nearly
  polynomial (of low degree) in a given b, so a needs few nodes. Measured on the erf flip-flop over
  200 epochs (docs/notes.md): nodes 5 x right_nodes 2 (100 particles) is within 3e-7 of the 8^4
  product grid, as close as the 4^4 grid (256) in principal directions; 6 x 3 (324) within 1e-8.
- ``"smolyak"``: the sparse Smolyak combination of one-dimensional Gauss-Hermite rules, with
  signed weights (the combination technique, coinciding nodes merged). ``level`` l >= 1: exact for
  polynomials of total degree up to 2 l - 1, with far fewer nodes than a product grid of the same
  degree in many directions (d = 4: levels 3 / 4 / 5 have 41 / 137 / 385 nodes, d = 6: 85 / 389 /
  1433). On the erf flip-flop (d = 4, smooth in every direction) the product grids are better at
  equal size (level 5: 8e-7 from the 8^4 grid after 200 epochs, against 1e-7 for 4^4); Smolyak
  pays where a product grid is out of reach (more inputs, outputs or rank).
- ``"qmc"``: scrambled Sobol points mapped to N(0, I) by the inverse normal CDF, made antithetic
  (xi and -xi) and whitened so that their second moments are exactly I: n particles of equal
  weight, error O(n^-1) up to log factors for smooth integrands. For larger P (rank 2 and up),
  where a product grid is too big.

Every rule is symmetric under theta -> -theta (nodes and weights). When phi is odd, a cloud
symmetric at the start stays symmetric (each row's update is odd in the row) and every population
average the loss uses, sum_p w_p v_p phi(h_p) with h_p and v_p linear in theta_p, is even: the
mirror-image half of the cloud, with doubled weights, moves exactly as the whole (:func:`fold`,
:func:`unfold`). The particle engine runs that half: half the cost, the same numbers.

For a linear network, every rule that integrates second moments exactly gives the exact overlap
dynamics (rows move as theta_p X_t), so the particle engine agrees with the overlap engine to
round-off.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from .overlaps import Overlaps, check_gram
from .precision import float64
from .quadrature import gauss_hermite, product_grid

RULES = ("gauss-hermite", "split", "smolyak", "qmc")
MAX_PARTICLES = 2_000_000


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Particles:
    """A weighted set of rows: theta (n, P) and weights (n,) summing to 1."""

    theta: jax.Array
    weights: jax.Array

    @property
    def overlaps(self) -> jax.Array:
        """S = sum_p w_p theta_p theta_p^T, (P, P)."""
        return self.theta.T @ (self.theta * self.weights[:, None])

    def __len__(self) -> int:
        return int(self.weights.shape[0])


def _principal_directions(S0: np.ndarray, rtol: float = 1e-12):
    """S0 = E diag(lambda) E^T restricted to lambda > rtol * max(lambda): returns (sqrt(lambda), E)."""
    lam, E = np.linalg.eigh((S0 + S0.T) / 2)
    keep = lam > rtol * max(lam.max(), 1e-300)
    return np.sqrt(lam[keep]), E[:, keep]


@float64
def gauss_hermite_particles(S0, nodes: int = 8) -> Particles:
    """Product Gauss-Hermite rule for N(0, S0): nodes^d particles (d = rank of S0)."""
    S0 = _as_matrix(S0)
    _check_nodes(nodes, "nodes")
    scale, E = _principal_directions(S0)
    _check_size(nodes**scale.size, f"nodes = {nodes} in {scale.size} directions")
    xi, weights = product_grid([nodes] * scale.size)
    return Particles(jnp.asarray((xi * scale) @ E.T), jnp.asarray(weights))


def _check_nodes(nodes, name: str) -> None:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ValueError(f"{name} = {nodes!r}: must be an integer >= 1 (Gauss-Hermite nodes per direction)")


def _check_size(n: int, what: str) -> None:
    if n > MAX_PARTICLES:
        raise ValueError(f"{what} gives {n} particles (limit {MAX_PARTICLES}); use fewer nodes or rule='qmc'")


@float64
def split_particles(S0, left: int, nodes: int = 5, right_nodes: int = 3) -> Particles:
    """The ``"split"`` rule for N(0, S0) (module docstring): ``nodes`` Gauss-Hermite nodes per
    direction of the first ``left`` coordinates (those inside phi), ``right_nodes`` per direction
    of the rest given them."""
    S0 = _as_matrix(S0)
    _check_nodes(nodes, "nodes")
    _check_nodes(right_nodes, "right_nodes")
    P = S0.shape[0]
    if isinstance(left, bool) or not isinstance(left, int) or not 0 <= left <= P:
        raise ValueError(f"left = {left!r}: must be an integer in [0, {P}] (coordinates inside phi)")
    S_bb, S_ab, S_aa = S0[:left, :left], S0[left:, :left], S0[left:, left:]
    scale_b, E_b = _principal_directions(S_bb) if left else (np.zeros(0), np.zeros((0, 0)))
    A = (S_ab @ E_b) / scale_b**2 @ E_b.T if scale_b.size else np.zeros((P - left, left))
    scale_c, E_c = _principal_directions(S_aa - A @ S_ab.T) if left < P else (np.zeros(0), np.zeros((0, 0)))
    d_b, d_c = scale_b.size, scale_c.size
    _check_size(
        nodes**d_b * right_nodes**d_c, f"nodes = {nodes}, right_nodes = {right_nodes} in {d_b} + {d_c} directions"
    )
    xi, weights = product_grid([nodes] * d_b + [right_nodes] * d_c)
    b = (xi[:, :d_b] * scale_b) @ E_b.T if d_b else np.zeros((len(weights), left))
    a = b @ A.T + ((xi[:, d_b:] * scale_c) @ E_c.T if d_c else 0.0)
    return Particles(jnp.asarray(np.concatenate([b, a], axis=1)), jnp.asarray(weights))


def smolyak_nodes(d: int, level: int) -> tuple[np.ndarray, np.ndarray]:
    """The Smolyak rule for N(0, I_d): nodes xi (n, d) and signed weights (n,) summing to 1.

    Combination technique: A = sum over multi-indices j (j_i >= 1) with l <= |j| - d + 1... written
    with q = l + d - 1,

        A(q, d) = sum_{q - d + 1 <= |j| <= q} (-1)^(q - |j|) C(d - 1, q - |j|) U_{j_1} x ... x U_{j_d},

    U_j the j-node Gauss-Hermite rule (exact to degree 2 j - 1), so A is exact for polynomials of
    total degree <= 2 l - 1. Nodes shared by several tensor rules are merged (their weights added).
    """
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise ValueError(f"level = {level!r}: must be an integer >= 1 (Smolyak level)")
    q = level + d - 1
    rules = [gauss_hermite(m) for m in range(1, level + 1)]
    merged: dict[tuple, float] = {}
    for j in itertools.product(range(1, level + 1), repeat=d):
        size = sum(j)
        if not q - d + 1 <= size <= q:
            continue
        coefficient = (-1) ** (q - size) * math.comb(d - 1, q - size)
        grids = np.meshgrid(*(rules[i - 1][0] for i in j), indexing="ij")
        weights = np.prod(np.meshgrid(*(rules[i - 1][1] for i in j), indexing="ij"), axis=0).ravel()
        for node, weight in zip(np.stack([g.ravel() for g in grids], axis=1), weights, strict=True):
            key = tuple(np.round(node, 12) + 0.0)  # + 0.0: -0.0 and 0.0 are one node
            merged[key] = merged.get(key, 0.0) + coefficient * weight
    nodes = np.array(list(merged), dtype=float).reshape(-1, d)
    weights = np.array(list(merged.values()))
    keep = np.abs(weights) > 1e-14
    return nodes[keep], weights[keep] / weights[keep].sum()


@float64
def smolyak_particles(S0, level: int = 4) -> Particles:
    """Smolyak sparse-grid particles for N(0, S0) (signed weights; module docstring)."""
    S0 = _as_matrix(S0)
    scale, E = _principal_directions(S0)
    xi, weights = smolyak_nodes(scale.size, level)
    if len(weights) > MAX_PARTICLES:
        raise ValueError(
            f"level = {level} in {scale.size} directions gives {len(weights)} particles (limit {MAX_PARTICLES})"
        )
    return Particles(jnp.asarray((xi * scale) @ E.T), jnp.asarray(weights))


def fold(cloud: Particles) -> tuple[Particles, int] | None:
    """The half of a mirror-symmetric cloud that the particle engine runs when phi is odd (module
    docstring) and its number of rows at 0, or None if ``cloud`` is not symmetric.

    The half holds each pair (theta, -theta) once, as the row with a positive first nonzero
    coordinate, at doubled weight, followed by the rows at 0 (their own mirror images) at their own
    weight. With an odd phi a row at 0 stays there: its gradient is a product with phi(0) = 0 or
    with its own zero entries.
    """
    theta, weights = np.asarray(cloud.theta), np.asarray(cloud.weights)
    if theta.ndim != 2:
        return None
    nonzero = theta != 0
    first = np.argmax(nonzero, axis=1)
    sign = np.where(nonzero.any(axis=1), np.sign(theta[np.arange(theta.shape[0]), first]), 0.0)
    positive, negative, zero = sign > 0, sign < 0, sign == 0
    a, b = theta[positive], -theta[negative]
    if a.shape != b.shape:
        return None
    ia, ib = np.lexsort(a.T[::-1]), np.lexsort(b.T[::-1])
    scale = max(float(np.abs(theta).max(initial=0.0)), 1e-300)
    if not (
        np.allclose(a[ia], b[ib], rtol=0, atol=1e-13 * scale)
        and np.allclose(weights[positive][ia], weights[negative][ib], rtol=1e-12, atol=0)
    ):
        return None
    half = np.concatenate([a, theta[zero]])
    half_weights = np.concatenate([2 * weights[positive], weights[zero]])
    return Particles(jnp.asarray(half), jnp.asarray(half_weights)), int(zero.sum())


def unfold(half: Particles, at_zero: int = 0) -> Particles:
    """The whole cloud of a folded half (:func:`fold`) whose last ``at_zero`` rows are at 0: each other
    row and its mirror image at half weight, then the rows at 0. Works on stacked clouds (..., n, P)."""
    paired = half.theta.shape[-2] - at_zero
    theta, weights = half.theta, half.weights
    return Particles(
        jnp.concatenate([theta[..., :paired, :], -theta[..., :paired, :], theta[..., paired:, :]], axis=-2),
        jnp.concatenate([weights[..., :paired] / 2, weights[..., :paired] / 2, weights[..., paired:]], axis=-1),
    )


@float64
def qmc_particles(S0, n: int = 2**14, seed: int = 0) -> Particles:
    """n equal-weight particles: antithetic, whitened scrambled-Sobol points for N(0, S0)."""
    S0 = _as_matrix(S0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 4 or n % 2:
        raise ValueError(f"n = {n!r}: must be an even integer >= 4 (particles of the QMC rule)")
    scale, E = _principal_directions(S0)
    d = scale.size
    sobol = scipy.stats.qmc.Sobol(d, scramble=True, seed=seed)
    half = sobol.random(n // 2)
    xi = scipy.stats.norm.ppf(np.clip(half, 1e-15, 1 - 1e-15))
    xi = np.concatenate([xi, -xi])  # odd moments vanish exactly
    cov = xi.T @ xi / n
    xi = xi @ np.linalg.inv(np.linalg.cholesky(cov)).T  # second moments exactly I
    return Particles(jnp.asarray((xi * scale) @ E.T), jnp.full((n,), 1.0 / n))


@float64
def make_particles(
    S0,
    rule: str = "gauss-hermite",
    nodes: int = 8,
    n: int = 2**14,
    seed: int = 0,
    level: int = 4,
    right_nodes: int = 3,
    left: int | None = None,
) -> Particles:
    """Particles for N(0, S0) by ``rule``: ``"gauss-hermite"`` with ``nodes``, ``"split"`` with
    ``nodes``, ``right_nodes`` and ``left`` (``rnn.n_left``), ``"smolyak"`` with ``level``, or
    ``"qmc"`` with ``n``."""
    if rule == "gauss-hermite":
        return gauss_hermite_particles(S0, nodes)
    if rule == "split":
        if left is None:
            raise ValueError("rule = 'split' needs left: the number of coordinates inside phi (rnn.n_left)")
        return split_particles(S0, left, nodes, right_nodes)
    if rule == "smolyak":
        return smolyak_particles(S0, level)
    if rule == "qmc":
        return qmc_particles(S0, n, seed)
    raise ValueError(f"rule = {rule!r}: unknown particle rule; allowed: {list(RULES)}")


def _as_matrix(S0) -> np.ndarray:
    S0 = np.asarray(S0.matrix if isinstance(S0, Overlaps) else S0, dtype=np.float64)
    check_gram(S0, "S0")
    return S0
