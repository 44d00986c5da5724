r"""Conservation laws of learning in overlap space (theory section 6).

With J = diag(+1 on A = [V | Z], -1 on B = [M | U]) (P, P) and a symmetrised gradient Gamma that couples
only A with B (a linear network: Gamma lives on the visible cross block S[A, B]),

    Gamma J + J Gamma = 0,

so under gradient flow dtheta/dt = -2 eta theta Gamma the N x N matrix

    K = theta J theta^T = A A^T - B B^T

is conserved: dK/dt = -2 eta theta (Gamma J + J Gamma) theta^T = 0. In overlap space, from
dS/dt = -2 eta (S Gamma + Gamma S) and J Gamma = -Gamma J,

    d(J S)/dt = 2 eta [Gamma, J S]        (a Lax, i.e. isospectral, flow),

so the eigenvalues of J S (the non-zero eigenvalues of K / N) and every trace tr((J S)^k) are conserved.
At rank 1, tr(J S) = zz + vv - mm - uu.

What breaks it (measured in tests/test_invariants.py):

- finite steps: one SGD step theta <- theta (I - 2 eta Gamma) changes K by 4 eta^2 theta Gamma J Gamma theta^T,
  so the drift is O(eta^2) per step and O(eta) at a fixed learning time eta * epochs;
- noisy targets or minibatches: Gamma fluctuates; the O(eta^2) terms accumulate like a random walk;
- Adam: its per-coordinate rescaling is not of the form theta X, and the update is not theta Gamma;
- nonlinear networks: Gamma has an S[B, B] part (Delta depends on it), which commutes with J instead of
  anticommuting.

All computations here are P x P, except :func:`dense_K`, which builds the N x N matrix explicitly (small N only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .model import LowRankRNN
from .overlaps import Overlaps, check_gram
from .precision import float64

DENSE_K_MAX_N = 5000


def J_matrix(rnn: LowRankRNN) -> np.ndarray:
    """J (P, P) = diag(-1 on B = [M | U], +1 on A = [V | Z]) in theta's column order [M | U | V | Z]."""
    sl = rnn.slices
    diag = np.ones(rnn.n_vectors)
    diag[sl["B"]] = -1.0
    return np.diag(diag)


def _overlap_matrix(rnn: LowRankRNN, S, field: str = "S") -> np.ndarray:
    S = np.asarray(S.matrix if isinstance(S, Overlaps) else S, dtype=np.float64)
    P = rnn.n_vectors
    if S.shape != (P, P):
        raise ValueError(f"{field}: shape {S.shape}; must be ({P}, {P}) for this network")
    check_gram(S, field)
    return (S + S.T) / 2


def _check_powers(powers) -> tuple[int, ...]:
    powers = tuple(powers) if not isinstance(powers, (int, np.integer)) else (powers,)
    if not powers or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in powers):
        raise ValueError(f"powers = {powers!r}: must be a non-empty sequence of integers >= 1")
    return tuple(int(k) for k in powers)


def _traces(JS: np.ndarray, powers: tuple[int, ...]) -> np.ndarray:
    """tr((JS)^k) for each k, for a stack JS (..., P, P) -> (..., len(powers))."""
    out, power, current = [], 1, JS
    for k in sorted(set(powers)):
        while power < k:
            current, power = current @ JS, power + 1
        out.append((k, np.trace(current, axis1=-2, axis2=-1)))
    table = dict(out)
    return np.stack([table[k] for k in powers], axis=-1)


def conserved_quantities(rnn: LowRankRNN, S, powers=(1, 2, 3)) -> dict[int, float]:
    r"""Traces tr((J S)^k) for k in ``powers``: conserved by gradient flow of a linear network.

    tr(J S) = sum_A ||a||^2 / N - sum_B ||b||^2 / N (rank 1: zz + vv - mm - uu);
    tr((J S)^2) = tr(S_AA^2) + tr(S_BB^2) - 2 ||S_AB||_F^2; ...

    Args:
        S: (P, P) overlaps (:class:`~overlapflow.Overlaps` or array).
        powers: the k >= 1 to report.

    Returns:
        {k: tr((J S)^k)}.
    """
    powers = _check_powers(powers)
    JS = J_matrix(rnn) @ _overlap_matrix(rnn, S)
    values = _traces(JS, powers)
    return {k: float(v) for k, v in zip(powers, values, strict=True)}


def _sqrtm_psd(S: np.ndarray) -> np.ndarray:
    """Symmetric square root of a stack of PSD matrices (..., P, P) (negative round-off clipped)."""
    lam, E = np.linalg.eigh(S)
    return (E * np.sqrt(np.clip(lam, 0.0, None))[..., None, :]) @ np.swapaxes(E, -1, -2)


def eigenvalues_JS(rnn: LowRankRNN, S) -> np.ndarray:
    r"""The eigenvalues of J S (P,), ascending: conserved by gradient flow of a linear network.

    J S is not symmetric, but its eigenvalues are real: J S = (J S^{1/2}) S^{1/2} has the eigenvalues of
    S^{1/2} J S^{1/2} (XY and YX share eigenvalues), a symmetric matrix. They are computed from that form
    (``eigvalsh``), which equals the real parts of ``eigvals(J S)`` and is more accurate. By Sylvester's
    law of inertia at most |A| = R + n_out are positive and at most |B| = n_in + R negative. They are
    also the non-zero eigenvalues of K / N = (A A^T - B B^T) / N.
    """
    S = _overlap_matrix(rnn, S)
    root = _sqrtm_psd(S)
    return np.linalg.eigvalsh(root @ J_matrix(rnn) @ root)


def invariant_series(rnn: LowRankRNN, history: xr.Dataset, powers=(1, 2, 3)) -> xr.Dataset:
    r"""The conserved quantities of every recorded state of a History.

    Returns an xarray.Dataset with

    - ``trace`` (epoch, power): tr((J S_t)^k);
    - ``drift`` (epoch, power): tr((J S_t)^k) - tr((J S_0)^k);
    - ``relative_drift`` (epoch, power): |drift| / tr(S_0^k), a scale that bounds |tr((J S_0)^k)| and is
      positive even when tr((J S_0)^k) = 0 (as for a default initialisation, all squared norms 1);
    - ``eigenvalue`` (epoch, index): the eigenvalues of J S_t, ascending.
    """
    if not isinstance(history, xr.Dataset) or "overlaps" not in history:
        raise TypeError(f"history = {type(history).__name__}: must be a History (xarray.Dataset with overlaps)")
    names = tuple(str(n) for n in history.row.values)
    if names != rnn.vector_names:
        raise ValueError(f"history: vectors {list(names)}; the network has {list(rnn.vector_names)}")
    powers = _check_powers(powers)
    S = np.asarray(history.overlaps.values, dtype=np.float64)
    S = (S + np.swapaxes(S, -1, -2)) / 2
    J = J_matrix(rnn)
    traces = _traces(J @ S, powers)
    root = _sqrtm_psd(S)
    eig = np.linalg.eigvalsh(root @ J @ root)
    scale = _traces(S[:1], powers)[0]
    drift = traces - traces[:1]
    return xr.Dataset(
        {
            "trace": (("epoch", "power"), traces),
            "drift": (("epoch", "power"), drift),
            "relative_drift": (("epoch", "power"), np.abs(drift) / np.where(scale > 0, scale, 1.0)),
            "eigenvalue": (("epoch", "index"), eig),
        },
        coords={"epoch": history.epoch.values, "power": list(powers), "index": np.arange(rnn.n_vectors)},
        attrs=dict(history.attrs),
    )


# ---------------------------------------------------------------------------- K = A A^T - B B^T in neuron space
class KFactors(NamedTuple):
    r"""K = A A^T - B B^T (N x N) kept as its low-rank factors.

    A: (N, R + n_out) = [V | Z]; B: (N, n_in + R) = [M | U]; ``apply(x)`` = A (A^T x) - B (B^T x) for x of
    shape (N,) or (N, k), at cost O(N P k), never forming K.
    """

    A: jax.Array
    B: jax.Array
    apply: Callable


@float64
def K_matrix(rnn: LowRankRNN, theta) -> KFactors:
    """The conserved matrix K = theta J theta^T = A A^T - B B^T as factors (A, B) and a matvec ``apply``."""
    theta = _check_theta(rnn, theta, "theta")
    sl = rnn.slices
    A, B = theta[:, sl["A"]], theta[:, sl["B"]]

    @float64
    def apply(x):
        x = jnp.asarray(x)
        if x.ndim not in (1, 2) or x.shape[0] != theta.shape[0]:
            raise ValueError(f"x: shape {x.shape}; must be (N,) or (N, k) with N = {theta.shape[0]}")
        return A @ (A.T @ x) - B @ (B.T @ x)

    return KFactors(A, B, apply)


@float64
def dense_K(rnn: LowRankRNN, theta) -> np.ndarray:
    """Builds the dense N x N matrix K = A A^T - B B^T explicitly (memory N^2): for checks at small N only.

    Refuses N > 5000 (``DENSE_K_MAX_N``); use :func:`K_matrix` (factors and a matvec) or :func:`K_drift`.
    """
    theta = np.asarray(_check_theta(rnn, theta, "theta"), dtype=np.float64)
    if theta.shape[0] > DENSE_K_MAX_N:
        raise ValueError(
            f"theta: N = {theta.shape[0]} > {DENSE_K_MAX_N}; dense_K builds an N x N matrix, "
            f"refused above N = {DENSE_K_MAX_N}"
        )
    return theta @ J_matrix(rnn) @ theta.T


def _check_theta(rnn: LowRankRNN, theta, field: str):
    theta = jnp.asarray(theta)
    if theta.ndim != 2 or theta.shape[1] != rnn.n_vectors or not jnp.issubdtype(theta.dtype, jnp.floating):
        raise ValueError(
            f"{field}: shape {theta.shape}, dtype {theta.dtype}; must be a float (N, P) array with P = {rnn.n_vectors}"
        )
    return theta


K_DRIFT_METHODS = ("qr", "gram")


@float64
def K_drift(rnn: LowRankRNN, theta0, theta1, relative: bool = False, method: str = "qr") -> float:
    r"""||K_1 - K_0||_F, the change of K = theta J theta^T between two networks, without forming N x N matrices.

    With Delta = theta_1 - theta_0 and X = [theta_0 | Delta] (N, 2P),

        K_1 - K_0 = theta_0 J Delta^T + Delta J theta_0^T + Delta J Delta^T = X D X^T,   D = [[0, J], [J, J]],

    so everything reduces to 2P x 2P matrices (cost O(N P^2)):

    - ``method="gram"``: ||X D X^T||_F^2 = tr(D G D G), G = X^T X (blocks theta_0^T theta_0, theta_0^T Delta,
      Delta^T Delta: traces of products of the Gram blocks A^T A, A^T B, B^T B). Taking the square root of a
      sum of squares that cancels loses half the digits: a drift below ~1e-8 ||K_0||_F is not resolved
      (measured: 4e-8 relative for an exact K-preserving transformation).
    - ``method="qr"`` (default): X = Q R (thin QR), ||X D X^T||_F = ||R D R^T||_F; the same number without
      squaring, resolved to round-off (~1e-15 relative).

    Writing the change through Delta (rather than K_1 and K_0 separately) keeps the O(N^2) terms of K_0 out.
    ||K||_F grows like N (||K||_F^2 = N^2 tr((J S)^2)); ``relative=True`` divides by ||K_0||_F.

    Args:
        theta0: (N, P) connectivity before (read in float64).
        theta1: (N, P) connectivity after, with the same N (read in float64).
        relative: divide by ||K_0||_F.
        method: ``"qr"`` or ``"gram"``.

    Returns:
        ||K_1 - K_0||_F (or / ||K_0||_F), a float.
    """
    if method not in K_DRIFT_METHODS:
        raise ValueError(f"method = {method!r}: allowed {list(K_DRIFT_METHODS)}")
    t0 = np.asarray(_check_theta(rnn, theta0, "theta0"), dtype=np.float64)
    t1 = np.asarray(_check_theta(rnn, theta1, "theta1"), dtype=np.float64)
    if t0.shape != t1.shape:
        raise ValueError(
            f"theta0, theta1: shapes {t0.shape} and {t1.shape}; K_drift compares two networks of the same N"
        )
    J = J_matrix(rnn)
    P = rnn.n_vectors
    X = np.concatenate([t0, t1 - t0], axis=1)
    D = np.block([[np.zeros((P, P)), J], [J, J]])
    if method == "gram":
        G = X.T @ X
        DG = D @ G
        drift = float(np.sqrt(max(np.trace(DG @ DG), 0.0)))
    else:
        R = np.linalg.qr(X, mode="r")
        drift = float(np.linalg.norm(R @ D @ R.T))
    if relative:
        R0 = np.linalg.qr(t0, mode="r")
        return drift / max(float(np.linalg.norm(R0 @ J @ R0.T)), 1e-300)
    return drift
