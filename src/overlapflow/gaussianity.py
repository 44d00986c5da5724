r"""Diagnostics of how Gaussian the rows of theta are (paper fig. 8).

The large-N theory assumes that the N rows theta_i in R^P of the connectivity theta (N, P) are
i.i.d. draws from one P-dimensional Gaussian, at initialisation and all through learning. Then
every quantity the network computes is a Gaussian average fixed by the overlaps
S = theta^T theta / N alone. Rotation-equivariant optimisers (SGD, momentum) keep the rows close
to Gaussian; Adam rescales each coordinate on its own and does not. The functions here measure
how far a set of rows is from Gaussian, one vector (column) at a time and over whole rows.

Samples may carry weights w_i >= 0 (particles with quadrature weights, say: for the particle
engine, ``gaussianity_report(rnn, cloud.theta, cloud.weights)``). Weights are
normalised to sum 1; ``weights=None`` means w_i = 1/n. Every moment is a weighted population
(biased) moment:

    mu    = sum_i w_i x_i
    m_k   = sum_i w_i (x_i - mu)^k
    skew  = m_3 / m_2^{3/2}                 (0 for a Gaussian)
    kurt  = m_4 / m_2^2 - 3                 (excess kurtosis; 0 for a Gaussian)

For equal weights these are ``scipy.stats.skew(x)`` and ``scipy.stats.kurtosis(x)`` (their
defaults: ``bias=True``, Fisher's definition).

Functions:

- :func:`qq_correlation`: correlation r of a normal probability (Q-Q) plot (1 for Gaussian);
  :func:`plotting_positions` gives the plot's points.
- :func:`skewness`, :func:`excess_kurtosis`: the moments above; :func:`jarque_bera` combines them
  into a test; :func:`effective_sample_size` is Kish's n_eff = 1 / sum_i w_i^2.
- :func:`mardia_kurtosis`, :func:`mardia_skewness`: Mardia's multivariate measures of whole rows
  (through :func:`whiten`, a pseudo-inverse that tolerates a singular covariance).
- :func:`gaussianity_report`: all of these for each vector of a network, as an ``xarray.Dataset``.
- :func:`gaussianity_over_training`: reports of theta snapshots stacked along ``epoch``.

All are plain numpy/scipy functions in float64 (JAX arrays are accepted and converted).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.stats
import xarray as xr

from .model import LowRankRNN

POSITIONS = ("filliben", "midpoint")


# ---------------------------------------------------------------------------- helpers
def _as_values(values) -> np.ndarray:
    """values as a float64 array (n,) or (n, P), n >= 1."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[0] < 1:
        raise ValueError(f"values: shape {x.shape}; must be (n,) or (n, P) with n >= 1")
    if not np.all(np.isfinite(x)):
        raise ValueError("values: contains NaN or Inf")
    return x


def _normalised_weights(weights, n: int) -> np.ndarray | None:
    """Weights (n,) normalised to sum 1, or None for equal weights."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights: shape {w.shape}; must be ({n},), one weight per sample")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights: must be finite and >= 0")
    total = w.sum()
    if not total > 0:
        raise ValueError("weights: sum to 0; at least one weight must be positive")
    return w / total


def _equal(w: np.ndarray | None, rtol: float = 1e-12) -> bool:
    """True for equal weights (None, or every weight within rtol of the largest)."""
    return w is None or bool(np.ptp(w) <= rtol * np.max(w))


def _weights_or_uniform(w: np.ndarray | None, n: int) -> np.ndarray:
    return np.full(n, 1.0 / n) if w is None else w


def _central_moments(x: np.ndarray, w: np.ndarray | None):
    """Weighted mean and central moments m_2, m_3, m_4 along axis 0."""
    w = _weights_or_uniform(w, x.shape[0])
    wx = w.reshape((-1,) + (1,) * (x.ndim - 1))
    mu = np.sum(wx * x, axis=0)
    d = x - mu
    d2 = d * d
    m2 = np.sum(wx * d2, axis=0)
    m3 = np.sum(wx * d2 * d, axis=0)
    m4 = np.sum(wx * d2 * d2, axis=0)
    return mu, m2, m3, m4


def _nonzero_variance(m2, x: np.ndarray) -> np.ndarray:
    """m2 > 0 beyond rounding: a column whose spread is below ~1e-12 of its magnitude is constant."""
    scale = np.max(np.abs(x), axis=0)
    return np.asarray(m2 > (4096 * np.finfo(np.float64).eps * scale) ** 2)


def _scalar_or_array(value):
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value


def effective_sample_size(weights, n: int | None = None) -> float:
    r"""Kish's effective sample size n_eff = 1 / sum_i w_i^2 (weights normalised to sum 1).

    Equal to n for equal weights; smaller the more uneven the weights. With ``weights=None``
    returns ``n``.
    """
    if weights is None:
        if n is None:
            raise ValueError("effective_sample_size: give weights, or n for equal weights")
        return float(n)
    w = _normalised_weights(weights, np.asarray(weights).shape[0])
    return float(1.0 / np.sum(w * w))


# ---------------------------------------------------------------------------- 1-D measures
def skewness(values, weights=None):
    r"""Weighted skewness m_3 / m_2^{3/2} (0 for a Gaussian).

    Args:
        values: (n,) samples, or (n, P) for P columns at once.
        weights: (n,) nonnegative weights (normalised here), or None for equal weights.

    Returns:
        A float for (n,) values, an array (P,) for (n, P). NaN where a column is constant.
    """
    x = _as_values(values)
    _, m2, m3, _ = _central_moments(x, _normalised_weights(weights, x.shape[0]))
    ok = _nonzero_variance(m2, x)
    out = np.where(ok, m3 / np.where(ok, m2, 1.0) ** 1.5, np.nan)
    return _scalar_or_array(out)


def excess_kurtosis(values, weights=None):
    r"""Weighted excess kurtosis m_4 / m_2^2 - 3 (0 for a Gaussian).

    Reference values: uniform -1.2, Laplace 3, a symmetric two-point distribution -2 (the
    smallest possible).

    Args:
        values: (n,) samples, or (n, P) for P columns at once.
        weights: (n,) nonnegative weights (normalised here), or None for equal weights.

    Returns:
        A float for (n,) values, an array (P,) for (n, P). NaN where a column is constant.
    """
    x = _as_values(values)
    _, m2, _, m4 = _central_moments(x, _normalised_weights(weights, x.shape[0]))
    ok = _nonzero_variance(m2, x)
    out = np.where(ok, m4 / np.where(ok, m2, 1.0) ** 2 - 3.0, np.nan)
    return _scalar_or_array(out)


def plotting_positions(values, weights=None, positions: str | None = None):
    r"""Sorted values, their normal quantiles and their weights: the points of a Q-Q plot.

    - ``"filliben"`` (equal weights only): Filliben's estimate of the medians of the uniform
      order statistics, as ``scipy.stats.probplot`` uses,

          p_n = 0.5^{1/n},  p_1 = 1 - p_n,  p_i = (i - 0.3175) / (n + 0.365)  (1 < i < n)

    - ``"midpoint"`` (any weights): the midpoints of the weighted empirical CDF. Tied values are
      merged first (their weights summed), so splitting a particle in two changes nothing; then,
      with x_(1) < ... < x_(k) the distinct sorted values and W_j their total weights,

          p_j = sum_{l <= j} W_l - W_j / 2

      For equal weights without ties this is Hazen's (i - 1/2) / n. Samples of weight 0 are
      dropped.

    The default (``positions=None``) is ``"filliben"`` for equal weights (None, or all within a
    relative 1e-12 of each other) and ``"midpoint"`` otherwise.

    Returns:
        (x, q, w): sorted values (k,), standard-normal quantiles Phi^{-1}(p) (k,), and weights
        (k,) summing to 1 (k = n for ``"filliben"``).
    """
    x = _as_values(values)
    if x.ndim != 1:
        raise ValueError(f"values: shape {x.shape}; a Q-Q plot takes one column (n,)")
    w = _normalised_weights(weights, x.shape[0])
    if positions is None:
        positions = "filliben" if _equal(w) else "midpoint"
    if positions not in POSITIONS:
        raise ValueError(f"positions = {positions!r}: unknown; allowed: {list(POSITIONS)}")
    n = x.shape[0]
    if positions == "filliben":
        if not _equal(w):
            raise ValueError("positions = 'filliben' needs equal weights; use 'midpoint' for weighted samples")
        p = np.empty(n)
        p[-1] = 0.5 ** (1.0 / n)
        p[0] = 1.0 - p[-1]
        p[1:-1] = (np.arange(2, n) - 0.3175) / (n + 0.365)
        return np.sort(x), scipy.stats.norm.ppf(p), np.full(n, 1.0 / n)
    w = _weights_or_uniform(w, n)
    keep = w > 0
    x, w = x[keep], w[keep]
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    starts = np.flatnonzero(np.concatenate([[True], x[1:] != x[:-1]]))
    x, w = x[starts], np.add.reduceat(w, starts)
    w = w / w.sum()
    cumulative = np.cumsum(w)
    p = np.clip(cumulative - w / 2, np.finfo(np.float64).tiny, 1.0 - np.finfo(np.float64).epsneg)
    return x, scipy.stats.norm.ppf(p), w


def qq_correlation(values, weights=None, positions: str | None = None):
    r"""Correlation r of the normal probability (Q-Q) plot: 1 for a perfectly Gaussian sample.

    With the sorted values x_(i), the standard-normal quantiles q_i = Phi^{-1}(p_i) at the
    plotting positions p_i and weights w_i (see :func:`plotting_positions`), r is the weighted
    Pearson correlation

        r = sum_i w_i (x_(i) - xbar)(q_i - qbar) / sqrt(sum_i w_i (x_(i) - xbar)^2 sum_i w_i (q_i - qbar)^2)

    with xbar = sum_i w_i x_(i), qbar = sum_i w_i q_i. For equal weights (default positions
    ``"filliben"``) this is exactly the r of ``scipy.stats.probplot(values)`` (Filliben's
    probability plot correlation coefficient). For weighted samples (default ``"midpoint"``) the
    positions are the weighted empirical CDF midpoints. r does not depend on the location or
    scale of the values; for a Gaussian sample of size n, 1 - r = O(log n / n) or so.

    Args:
        values: (n,) samples, or (n, P) for P columns at once.
        weights: (n,) nonnegative weights (normalised here), or None for equal weights.
        positions: ``"filliben"``, ``"midpoint"`` or None (choose by the weights).

    Returns:
        r, a float for (n,) values or an array (P,) for (n, P). NaN where a column has fewer than
        two distinct values.
    """
    x = _as_values(values)
    if x.ndim == 2:
        return np.array([qq_correlation(x[:, j], weights, positions) for j in range(x.shape[1])])
    xs, q, w = plotting_positions(x, weights, positions)
    dx = xs - np.sum(w * xs)
    dq = q - np.sum(w * q)
    sxx, sqq = np.sum(w * dx * dx), np.sum(w * dq * dq)
    if not (_nonzero_variance(sxx, xs) and sqq > 0):
        return float("nan")
    return float(np.sum(w * dx * dq) / np.sqrt(sxx * sqq))


def jarque_bera(values, weights=None):
    r"""Jarque-Bera statistic JB = n/6 (skew^2 + kurt^2 / 4) and its chi2(2) p-value.

    For equal weights n is the sample size and this is ``scipy.stats.jarque_bera``. For weighted
    samples n is Kish's effective sample size n_eff = 1 / sum_i w_i^2 (weights normalised to
    sum 1); the chi2(2) p-value is then a heuristic, and meaningless for deterministic
    quadrature nodes (it is not a random sample).

    Returns:
        (statistic, p_value), floats for (n,) values or arrays (P,) for (n, P).
    """
    x = _as_values(values)
    w = _normalised_weights(weights, x.shape[0])
    n = effective_sample_size(w, x.shape[0])
    s = np.asarray(skewness(x, w))
    k = np.asarray(excess_kurtosis(x, w))
    stat = n / 6.0 * (s**2 + k**2 / 4.0)
    return _scalar_or_array(stat), _scalar_or_array(scipy.stats.chi2.sf(stat, 2))


# ---------------------------------------------------------------------------- multivariate
def whiten(rows, weights=None, rtol: float = 1e-10):
    r"""Whitened rows z_i = Lambda_k^{-1/2} E_k^T (x_i - mu) and the rank k used.

    Sigma = sum_i w_i (x_i - mu)(x_i - mu)^T (weighted population covariance) = E Lambda E^T;
    only the eigen-directions with lambda > rtol * lambda_max are kept (a pseudo-inverse), so a
    singular covariance (duplicate or collinear columns, a constant column) is handled and the
    effective dimension is its numerical rank k. Then sum_i w_i z_i z_i^T = I_k.

    Args:
        rows: (n, P).
        weights: (n,) nonnegative weights, or None for equal weights.

    Returns:
        (z (n, k), k).
    """
    x = _as_values(rows)
    if x.ndim != 2:
        raise ValueError(f"rows: shape {x.shape}; must be (n, P)")
    w = _weights_or_uniform(_normalised_weights(weights, x.shape[0]), x.shape[0])
    d = x - w @ x
    sigma = (d * w[:, None]).T @ d
    lam, vecs = np.linalg.eigh((sigma + sigma.T) / 2)
    top = lam.max(initial=0.0)
    keep = lam > rtol * top if top > 0 else np.zeros_like(lam, dtype=bool)
    z = (d @ vecs[:, keep]) / np.sqrt(lam[keep])
    return z, int(keep.sum())


def mardia_kurtosis(rows, weights=None, rtol: float = 1e-10) -> tuple[float, int]:
    r"""Mardia's multivariate kurtosis b_{2,P} = sum_i w_i ((x_i - mu)^T Sigma^+ (x_i - mu))^2.

    For a Gaussian in P dimensions b_{2,P} -> P (P + 2); heavier tails give more, lighter less.
    Sigma^+ is the pseudo-inverse on the numerically nonzero eigen-directions of the weighted
    covariance (see :func:`whiten`), and P is then its rank k.

    Args:
        rows: (n, P) samples, one row each.
        weights: (n,) nonnegative weights, or None for equal weights.
        rtol: eigenvalues below rtol * largest count as zero.

    Returns:
        (b2, k): the kurtosis and the rank k; the Gaussian value is k (k + 2).
    """
    z, k = whiten(rows, weights, rtol)
    w = _weights_or_uniform(_normalised_weights(weights, z.shape[0]), z.shape[0])
    d2 = np.sum(z * z, axis=1)
    return float(np.sum(w * d2 * d2)) if k else float("nan"), k


def mardia_skewness(rows, weights=None, rtol: float = 1e-10) -> tuple[float, int]:
    r"""Mardia's multivariate skewness b_{1,P} = sum_{a,b,c} (sum_i w_i z_ia z_ib z_ic)^2.

    z are the whitened rows (:func:`whiten`); this equals the usual double sum
    sum_{i,j} w_i w_j (x_i^T Sigma^+ x_j)^3 over centred rows, but costs O(n k^3), not O(n^2).
    0 for a Gaussian (n b_1 / 6 is asymptotically chi2 with k (k+1) (k+2) / 6 degrees of freedom).

    Returns:
        (b1, k).
    """
    z, k = whiten(rows, weights, rtol)
    w = _weights_or_uniform(_normalised_weights(weights, z.shape[0]), z.shape[0])
    third = np.einsum("i,ia,ib,ic->abc", w, z, z, z, optimize=True)
    return float(np.sum(third**2)) if k else float("nan"), k


# ---------------------------------------------------------------------------- reports
def gaussianity_report(rnn: LowRankRNN, theta, weights=None, rtol: float = 1e-10) -> xr.Dataset:
    r"""How Gaussian the rows of theta (N, P) are: per vector and over whole rows.

    Per vector (dimension ``vector``, coordinate ``rnn.vector_names``), from the N entries of
    that column with weights w_i (normalised to sum 1; None = equal):

    - ``mean``, ``std``: weighted mean and population standard deviation.
    - ``qq_r``: Q-Q correlation (:func:`qq_correlation`; for equal weights ``scipy.stats.probplot``'s r).
    - ``skewness``, ``excess_kurtosis``: m_3 / m_2^{3/2} and m_4 / m_2^2 - 3.
    - ``jarque_bera``, ``jarque_bera_pvalue``: JB = n/6 (skew^2 + kurt^2/4) and its chi2(2)
      p-value. n = N for equal weights; for weighted samples n = n_eff = 1 / sum_i w_i^2 (Kish's
      effective sample size), a heuristic (and meaningless for quadrature nodes).

    Over whole rows (scalars; Sigma the weighted covariance of the rows, pseudo-inverted on its
    numerically nonzero eigen-directions, k its rank, normally P):

    - ``mardia_kurtosis`` b_{2,k} = E[(x^T Sigma^+ x)^2] (x centred) and ``mardia_kurtosis_gaussian``
      = k (k + 2), its Gaussian value.
    - ``mardia_kurtosis_z`` = (b_2 - k(k+2)) / sqrt(8 k (k+2) / n), asymptotically N(0, 1) for
      Gaussian rows (n as for Jarque-Bera).
    - ``mardia_skewness`` b_{1,k} (0 for Gaussian rows; :func:`mardia_skewness`).
    - ``mardia_rank`` k, ``n_eff`` (the n above).

    Args:
        rnn: the architecture (for the vector names).
        theta: (N, P) connectivity, numpy or JAX, any float dtype (computed in float64).
        weights: (N,) nonnegative weights of the rows, or None for equal weights.
        rtol: relative eigenvalue cut-off of the pseudo-inverse.

    Returns:
        ``xarray.Dataset`` with the variables above; attrs ``N`` and ``weighted``.
    """
    theta = _as_values(theta)
    names = list(rnn.vector_names)
    if theta.ndim != 2 or theta.shape[1] != len(names):
        raise ValueError(f"theta: shape {theta.shape}; must be (N, {len(names)}) for this network")
    N = theta.shape[0]
    w = _normalised_weights(weights, N)
    n_eff = effective_sample_size(w, N)
    mu, m2, _, _ = _central_moments(theta, w)
    jb, jb_p = jarque_bera(theta, w)
    b2, k = mardia_kurtosis(theta, w, rtol)
    b1, _ = mardia_skewness(theta, w, rtol)
    gauss = float(k * (k + 2))
    z = (b2 - gauss) / np.sqrt(8.0 * gauss / n_eff) if k else float("nan")
    vec = ("vector",)
    return xr.Dataset(
        {
            "mean": (vec, mu),
            "std": (vec, np.sqrt(m2)),
            "qq_r": (vec, np.atleast_1d(qq_correlation(theta, w))),
            "skewness": (vec, np.atleast_1d(skewness(theta, w))),
            "excess_kurtosis": (vec, np.atleast_1d(excess_kurtosis(theta, w))),
            "jarque_bera": (vec, np.atleast_1d(jb)),
            "jarque_bera_pvalue": (vec, np.atleast_1d(jb_p)),
            "mardia_kurtosis": ((), b2),
            "mardia_kurtosis_gaussian": ((), gauss),
            "mardia_kurtosis_z": ((), float(z)),
            "mardia_skewness": ((), b1),
            "mardia_rank": ((), k),
            "n_eff": ((), n_eff),
        },
        coords={"vector": names},
        attrs={"N": int(N), "weighted": int(w is not None)},
    )


def gaussianity_over_training(
    rnn: LowRankRNN,
    thetas,
    epochs: Sequence[int] | np.ndarray | None = None,
    weights=None,
    rtol: float = 1e-10,
) -> xr.Dataset:
    r""":func:`gaussianity_report` of K theta snapshots, stacked along an ``epoch`` dimension.

    Args:
        rnn: the architecture.
        thetas: (K, N, P) array, or a sequence of K arrays (N, P) (N may differ between them when
            ``weights`` is None or given per snapshot).
        epochs: (K,) epoch labels of the snapshots; default 0..K-1.
        weights: None (equal), (N,) shared by every snapshot, or (K, N) one set per snapshot.
        rtol: relative eigenvalue cut-off of the pseudo-inverse.

    Returns:
        ``xarray.Dataset``: each report variable with a leading ``epoch`` dimension.
    """
    ndim = getattr(thetas, "ndim", None)
    if ndim is not None and ndim != 3:
        raise ValueError(f"thetas: shape {thetas.shape}; must be (K, N, P) or a sequence of K arrays (N, P)")
    snapshots = list(thetas)
    if not snapshots:
        raise ValueError("thetas: no snapshots; need K >= 1")
    K = len(snapshots)
    epochs = np.arange(K) if epochs is None else np.asarray(epochs)
    if epochs.shape != (K,):
        raise ValueError(f"epochs: shape {epochs.shape}; must be ({K},), one label per snapshot")
    if weights is None:
        per = [None] * K
    else:
        w = np.asarray(weights, dtype=np.float64)
        per = list(w) if w.ndim == 2 else [w] * K
        if len(per) != K:
            raise ValueError(f"weights: shape {w.shape}; must be (N,) or ({K}, N)")
    reports = [gaussianity_report(rnn, th, wk, rtol) for th, wk in zip(snapshots, per, strict=True)]
    out = xr.concat(reports, dim="epoch", data_vars="all", coords="minimal", combine_attrs="drop_conflicts")
    return out.assign_coords(epoch=epochs)
