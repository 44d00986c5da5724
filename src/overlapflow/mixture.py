r"""Populations: the law of the rows of theta as a Gaussian mixture.

A network built from populations has rows theta_i in R^P (in the vector order [M | U | V | Z]) drawn
from a mixture of K Gaussians,

    theta ~ sum_k w_k N(mu_k, C_k),      w_k > 0, sum_k w_k = 1,

neuron i belonging to population ``labels[i]``. K = 1 with mu = 0 is the single Gaussian N(0, S) of
the paper's theory. Per population the overlaps are the second moments

    S_k = E_k[theta theta^T] = C_k + mu_k mu_k^T,       and the network's    S = sum_k w_k S_k.

Learning moves every row by the same function of itself (in the large-N limit); where that function
is affine on a component, theta -> X_k theta - shift_k, the component stays Gaussian:

    mu_k -> X_k mu_k - shift_k,          C_k -> X_k C_k X_k^T          (:meth:`Mixture.push_affine`)

which is the step of the mixture closure (:mod:`overlapflow.engines.overlap`; derivation in
docs/theory.md). This module holds the law itself: checks, moments, networks drawn from it
(:meth:`Mixture.sample`), the empirical law of a labelled network (:meth:`Mixture.from_params`), a
fitted one (:meth:`Mixture.fit`, scikit-learn), and moment-preserving splits of a component into
narrower ones (:meth:`Mixture.split`, :meth:`Mixture.refine`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .model import LowRankRNN
from .overlaps import check_gram
from .precision import float64, float64_scope
from .quadrature import product_grid


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Mixture:
    """The Gaussian-mixture law of the rows: weights (K,), means (K, P), covariances (K, P, P).

    A JAX PyTree (the three arrays are its leaves). Build a checked one with :meth:`create`,
    :meth:`gaussian`, :meth:`from_params`, :meth:`split` or :meth:`fit`.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> import overlapflow as of
        >>> rnn = of.LowRankRNN(rank=1)
        >>> theta = rnn.init(jax.random.key(0), N=100)
        >>> labels = np.arange(100) % 2  # two populations of 50 neurons
        >>> mixture = of.Mixture.from_params(rnn, theta, labels)
        >>> mixture.n_components, mixture.means.shape, mixture.covariances.shape
        (2, (2, 4), (2, 4, 4))
        >>> bool(np.allclose(mixture.overlaps, of.Overlaps.from_params(rnn, theta).matrix))
        True
        >>> theta2, labels2 = mixture.sample(rnn, jax.random.key(1), N=60, exact=True)
        >>> theta2.shape, np.bincount(labels2).tolist()
        ((60, 4), [30, 30])

    Every engine takes one as its start (the overlap engine runs the mixture closure; a network
    takes ``populations=labels``).
    """

    weights: Float[Array, " K"]
    means: Float[Array, "K P"]
    covariances: Float[Array, "K P P"]

    # ------------------------------------------------------------------ construction
    @classmethod
    @float64
    def create(cls, weights, means, covariances, rnn: LowRankRNN | None = None, name: str = "mixture") -> Mixture:
        """A checked mixture in float64. Errors name the field (``name.weights`` ...) in one line:
        weights must be positive and sum to 1, means (K, P) and covariances (K, P, P) symmetric
        positive semi-definite, P = ``rnn.n_vectors`` when ``rnn`` is given."""
        w = np.asarray(weights, dtype=np.float64)
        mu = np.asarray(means, dtype=np.float64)
        C = np.asarray(covariances, dtype=np.float64)
        if w.ndim != 1 or w.size < 1:
            raise ValueError(f"{name}.weights: shape {w.shape}; must be (K,) with K >= 1 components")
        K = w.size
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"{name}.weights = {w.tolist()}: every weight must be a positive finite number")
        if abs(w.sum() - 1.0) > 1e-9:
            raise ValueError(f"{name}.weights = {w.tolist()}: sum to {w.sum():.12g}; must sum to 1")
        P = rnn.n_vectors if rnn is not None else (mu.shape[-1] if mu.ndim == 2 else None)
        if mu.shape != (K, P):
            raise ValueError(f"{name}.means: shape {mu.shape}; must be ({K}, {P}) (one mean per component)")
        if not np.all(np.isfinite(mu)):
            raise ValueError(f"{name}.means: contains NaN or Inf; must be finite")
        if C.shape != (K, P, P):
            raise ValueError(f"{name}.covariances: shape {C.shape}; must be ({K}, {P}, {P})")
        for k in range(K):
            check_gram(C[k], f"{name}.covariances[{k}]")
        C = (C + np.swapaxes(C, 1, 2)) / 2
        return cls(jnp.asarray(w), jnp.asarray(mu), jnp.asarray(C))

    @classmethod
    def gaussian(cls, S: Float[ArrayLike, "P P"], rnn: LowRankRNN | None = None) -> Mixture:
        """The single Gaussian N(0, S) (K = 1): the law of the paper's theory."""
        S = np.asarray(getattr(S, "matrix", S), dtype=np.float64)
        return cls.create(np.ones(1), np.zeros((1, S.shape[0])), S[None], rnn)

    @classmethod
    @float64
    def from_params(
        cls,
        rnn: LowRankRNN,
        theta: Float[ArrayLike, "N P"],
        labels: Int[ArrayLike, " N"],
        row_weights: Float[ArrayLike, " N"] | None = None,
    ) -> Mixture:
        """The empirical law of labelled rows: w_k = N_k / N, mu_k the mean and C_k the covariance
        (divided by N_k) of population k's rows, so that ``overlaps`` equals theta^T theta / N. With
        ``row_weights`` (a particle cloud's, summing to 1) every sum over rows is weighted by them.
        Populations are 0..K-1; each must have a row."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != rnn.n_vectors:
            raise ValueError(f"theta: shape {theta.shape}; must be (N, P) with P = {rnn.n_vectors}")
        labels = check_labels(labels, theta.shape[0])
        K = int(labels.max()) + 1
        counts = np.bincount(labels, minlength=K)
        if np.any(counts == 0):
            raise ValueError(f"labels: populations {np.flatnonzero(counts == 0).tolist()} have no neuron; use 0..K-1")
        r = np.ones(theta.shape[0]) if row_weights is None else np.asarray(row_weights, dtype=np.float64)
        mass = np.bincount(labels, weights=r, minlength=K)
        rows = [(theta[labels == k], r[labels == k] / mass[k]) for k in range(K)]
        means = np.stack([x.T @ q for x, q in rows])
        covs = np.stack([(x - mu).T @ ((x - mu) * q[:, None]) for (x, q), mu in zip(rows, means, strict=True)])
        return cls.create(mass / mass.sum(), means, covs, rnn)

    @classmethod
    def fit(cls, rnn: LowRankRNN, theta: Float[ArrayLike, "N P"], K: int, key: jax.Array | int = 0):
        """A K-component Gaussian-mixture fit of a network's rows (scikit-learn's GaussianMixture,
        full covariances), as the ``low_rank_rnns`` clustering does. Returns (mixture, labels): the
        most likely component of each row, and the empirical law of those populations
        (:meth:`from_params`, so that its overlaps are exactly the network's)."""
        if isinstance(K, bool) or not isinstance(K, int) or K < 1:
            raise ValueError(f"K = {K!r}: must be an integer >= 1 (mixture components)")
        theta = np.asarray(theta, dtype=np.float64)
        seed = key if isinstance(key, int) else int(jax.random.randint(key, (), 0, 2**31 - 1))
        labels, _ = fit_labels(theta, K, seed)
        return cls.from_params(rnn, theta, labels), labels

    @classmethod
    def split(cls, rnn: LowRankRNN, S: Float[ArrayLike, "P P"], K: int, width: float = 0.0) -> Mixture:
        """N(0, S) written as K components with the same law's first and second moments: Gauss-Hermite
        nodes along the leading principal direction of the coordinates inside phi (m, u)
        (:meth:`refine` of the single Gaussian). ``width`` = 0 gives the conditional Gaussians at
        the nodes (moments exact up to degree 2K - 1 along that direction)."""
        if isinstance(K, bool) or not isinstance(K, int) or K < 1:
            raise ValueError(f"K = {K!r}: must be an integer >= 1 (components)")
        single = cls.gaussian(S, rnn)
        return single if K == 1 else single.refine(0, _leading_left_directions(rnn, S, 1), [K], width)

    # ------------------------------------------------------------------ moments
    @property
    def n_components(self) -> int:
        return int(self.weights.shape[-1])

    @property
    def second_moments(self) -> Float[Array, "K P P"]:
        """S_k = C_k + mu_k mu_k^T, the overlaps of each population (in the mixture's dtype)."""
        with float64_scope():
            return self.covariances + self.means[..., :, None] * self.means[..., None, :]

    @property
    def overlaps(self) -> Float[Array, "P P"]:
        """The network's overlaps S = sum_k w_k S_k (in the mixture's dtype)."""
        with float64_scope():
            return jnp.einsum("...k,...kij->...ij", self.weights, self.second_moments)

    def push_affine(self, X: Float[Array, "K P P"], shift: Float[Array, "K P"]) -> Mixture:
        """The law of X_k theta - shift_k for theta in component k: mu_k -> X_k mu_k - shift_k,
        C_k -> X_k C_k X_k^T (a Gaussian stays Gaussian under an affine map)."""
        means = jnp.einsum("kij,kj->ki", X, self.means) - shift
        covs = jnp.einsum("kij,kjl,kml->kim", X, self.covariances, X)
        return Mixture(self.weights, means, (covs + jnp.swapaxes(covs, -1, -2)) / 2)

    # ------------------------------------------------------------------ refinement
    @float64
    def refine(self, k: int, directions: Float[ArrayLike, "P d"], counts, width: float = 0.0) -> Mixture:
        """Component k split into prod(counts) components, with the same mean and covariance.

        Along the whitened coordinates x = L^-1 D^T (theta - mu_k) of ``directions`` D (P, d)
        (L L^T = D^T C_k D, Cholesky: x_1 follows D_1, x_2 follows D_2 given x_1, ...), x ~ N(0, I_d);
        a product Gauss-Hermite grid x_j (``counts`` nodes per coordinate, weights omega_j) writes
        component k as

            sum_j w_k omega_j N(mu_k + c A x_j, C_k - c^2 A A^T),    A = C_k D L^-T,  c = sqrt(1 - width^2)

        Exact in the mean and covariance for any width in [0, 1]; width 0 (the conditional
        Gaussians at the nodes) is also exact in every moment of degree < 2 counts along x.
        """
        if not 0.0 <= width <= 1.0:
            raise ValueError(f"width = {width!r}: must be in [0, 1] (the components' width along the split)")
        w, mu, C = (np.asarray(a, dtype=np.float64) for a in (self.weights, self.means, self.covariances))
        D = np.asarray(directions, dtype=np.float64).reshape(mu.shape[1], -1)
        counts = list(counts)
        if any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 2 for c in counts):
            raise ValueError(f"counts = {counts}: each must be an integer >= 2 (nodes keep the covariance from 2 on)")
        if len(counts) != D.shape[1]:
            raise ValueError(f"counts = {counts}: one node count per direction ({D.shape[1]} directions)")
        gram_D = D.T @ C[k] @ D
        lam = np.linalg.eigvalsh(gram_D)
        if lam.min() <= 1e-12 * max(lam.max(), 1e-300):
            raise ValueError(f"directions: component {k} has no spread along some of them; split along others")
        L = np.linalg.cholesky(gram_D)  # x = L^-1 D^T (theta - mu): x_1 along D_1, x_2 along D_2 given x_1, ...
        A = C[k] @ D @ np.linalg.inv(L).T  # (P, d): theta - mu = A x + (independent of x)
        xi, omega = product_grid(counts)
        c = np.sqrt(1.0 - width**2)
        new_means = mu[k] + c * xi @ A.T
        new_cov = C[k] - c**2 * A @ A.T
        new_cov = (new_cov + new_cov.T) / 2
        lam_c, E_c = np.linalg.eigh(new_cov)
        new_cov = (E_c * np.clip(lam_c, 0.0, None)) @ E_c.T  # round-off below 0 removed
        weights = np.concatenate([w[:k], w[k] * omega, w[k + 1 :]])
        means = np.concatenate([mu[:k], new_means, mu[k + 1 :]])
        covs = np.concatenate([C[:k], np.broadcast_to(new_cov, (len(omega),) + new_cov.shape), C[k + 1 :]])
        return Mixture(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs))

    # ------------------------------------------------------------------ networks drawn from it
    @float64
    def sample(
        self, rnn: LowRankRNN, key: jax.Array, N: int, dtype=jnp.float32, exact: bool = False
    ) -> tuple[Float[Array, "N P"], Int[Array, " N"]]:
        """A network of N neurons drawn from the mixture: (theta (N, P), labels (N,)).

        Population k has N_k = round(w_k N) rows (the last takes what rounding leaves). With
        ``exact`` each population's empirical mean and covariance (divided by N_k) equal mu_k and
        C_k exactly (rows mu_k + sqrt(N_k) Q diag(sqrt(lambda)) E^T, Q orthonormal and orthogonal to
        the ones vector; needs N_k > P), as :func:`~overlapflow.overlaps.sample_params` does for one
        Gaussian; otherwise rows are i.i.d. draws.
        """
        P = rnn.n_vectors
        if self.means.shape[-1] != P:
            raise ValueError(f"mixture: P = {self.means.shape[-1]}; this network has P = {P}")
        if isinstance(N, bool) or not isinstance(N, int) or N < self.n_components:
            raise ValueError(f"N = {N!r}: must be an integer >= K = {self.n_components}")
        counts = np.asarray(population_sizes(self.weights, N))
        if np.any(counts < 1) or (exact and np.any(counts <= P)):
            least = P + 1 if exact else 1
            raise ValueError(
                f"N = {N}: populations of sizes {counts.tolist()}; each needs at least {least} neurons"
                + (" for exact=True (its mean and covariance exactly the mixture's)" if exact else "")
            )
        rows = []
        for k, (n_k, key_k) in enumerate(zip(counts, jax.random.split(key, len(counts)), strict=True)):
            lam, E = np.linalg.eigh(np.asarray(self.covariances[k]))
            root = jnp.asarray(E * np.sqrt(np.clip(lam, 0.0, None)))  # C_k = root root^T
            gauss = jax.random.normal(key_k, (int(n_k), P), dtype=jnp.float64)
            if exact:
                Q, R = jnp.linalg.qr(gauss - gauss.mean(0))
                gauss = jnp.sqrt(n_k) * Q * jnp.sign(jnp.diag(R))
            rows.append(self.means[k] + gauss @ root.T)
        labels = np.repeat(np.arange(len(counts)), counts)
        return jnp.concatenate(rows).astype(dtype), jnp.asarray(labels, dtype=jnp.int32)


def fit_labels(theta: Float[np.ndarray, "N P"], K: int, seed: int) -> tuple[np.ndarray, float]:
    """The population of each row (N,) of a K-component Gaussian-mixture fit of the rows (scikit-learn's
    ``GaussianMixture``: full covariances, 3 initialisations, ``random_state=seed``; the most likely
    component of each row, empty components dropped), and the fit's BIC, -2 log L + p log N."""
    from ._extras import require

    require("decode", "fitting populations (Mixture.fit)")
    from sklearn.mixture import GaussianMixture

    model = GaussianMixture(K, covariance_type="full", random_state=seed, n_init=3).fit(theta)
    labels = np.unique(model.predict(theta), return_inverse=True)[1]
    return labels, float(model.bic(theta))


def population_sizes(weights, N: int) -> list[int]:
    """The number of neurons of each population in a network of N drawn from a mixture with these
    weights (:meth:`Mixture.sample`): round(w_k N), the last taking what rounding leaves."""
    sizes = np.round(np.asarray(weights, dtype=np.float64) * N).astype(int)
    sizes[-1] = N - sizes[:-1].sum()
    return sizes.tolist()


def check_labels(labels, n: int, name: str = "populations") -> np.ndarray:
    """Population labels (n,) as non-negative integers; one line naming ``name`` otherwise."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{name}: shape {labels.shape}; must be ({n},), the population of each row")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
        raise ValueError(f"{name}: must be integers 0..K-1 (the population of each row)")
    return labels.astype(np.int64)


@float64
def population_moments(
    theta: Float[Array, "n P"], weights: Float[Array, " n"] | None, labels: Int[Array, " n"], K: int
) -> tuple[Float[Array, "K P"], Float[Array, "K P P"]]:
    """Per population k: the mean and the second moment of its rows under the row weights
    (1/N for a network): (sum_{i in k} w_i theta_i, sum_{i in k} w_i theta_i theta_i^T) / sum_{i in k} w_i."""
    w = jnp.full(theta.shape[0], 1.0 / theta.shape[0], theta.dtype) if weights is None else weights
    member = jax.nn.one_hot(labels, K, dtype=theta.dtype) * w[:, None]  # (n, K)
    member = member / jnp.sum(member, axis=0)
    means = member.T @ theta
    moments = jnp.einsum("nk,ni,nj->kij", member, theta, theta)
    return means, moments


def _leading_left_directions(rnn: LowRankRNN, S, d: int) -> np.ndarray:
    """The d leading principal directions of S's block inside phi (m, u), embedded in R^P (P, d)."""
    S = np.asarray(getattr(S, "matrix", S), dtype=np.float64)
    left = rnn.n_left
    lam, E = np.linalg.eigh(S[:left, :left])
    D = np.zeros((S.shape[0], d))
    D[:left] = E[:, ::-1][:, :d]
    return D
