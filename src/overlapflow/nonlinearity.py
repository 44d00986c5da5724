r"""Nonlinearities phi and their Gaussian gain g(Delta).

In the large-N Gaussian closure, population averages reduce to one scalar function of the
variance Delta of the currents:

    g(Delta) = E_xi[ phi'(sqrt(Delta) xi) ],   xi ~ N(0, 1)

so that (1/N) sum_i a_i phi(h_i) -> S[a, B] k g(Delta) (Stein's lemma).

- linear: g = 1.
- erf, phi(x) = erf(sqrt(pi)/2 x) (so phi'(0) = 1): g(Delta) = 1 / sqrt(1 + pi Delta / 2).
- relu: g = 1/2.
- anything else (tanh, user functions): Gauss-Hermite quadrature with ``n_nodes`` nodes.

Names resolve through :data:`REGISTRY`; :func:`register_nonlinearity` adds one, which is then usable
by name everywhere, experiment configs included (``phi = "name"``).

The quadrature is differentiated in Delta directly, never through sqrt(Delta) (whose derivative
is infinite at Delta = 0, where every run starts). By the heat equation,

    d/dDelta E[f(sqrt(Delta) xi)] = (1/2) E[f''(sqrt(Delta) xi)],

so the derivative of a Gaussian expectation is itself a Gaussian expectation; it is attached as
a ``jax.custom_jvp`` and so holds to every order.

Accuracy of the quadrature (measured on erf, whose gain is known in closed form; see
``tests/test_nonlinearity.py``): with the default 128 nodes the error is at round-off (1e-16)
for Delta <= 4 and grows with Delta because phi' becomes narrow against the Gaussian: 1e-7 at
Delta = 10, 1e-3 at Delta = 30 (256 nodes: 2e-14 at 10, 7e-6 at 30; 40 nodes: 5e-15 at 1,
4e-3 at 10). :meth:`Nonlinearity.gain_error` estimates it at any Delta by comparing ``n`` and
``2 n`` nodes; training records the largest Delta a run visits and that estimate in the History
(``attrs["max_delta"]``, ``attrs["gain_error"]``) and warns when it exceeds 1e-6.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .precision import float64_scope

GAIN_ERROR_WARNING = 1e-6


def _erf_phi(x):
    return jax.scipy.special.erf(jnp.sqrt(jnp.pi) / 2 * x)


def _relu(x):
    return jnp.maximum(x, 0.0)


@functools.cache
def _hermite_rule(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite nodes and weights normalised to sum to 1."""
    x, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    return x, w / w.sum()


def _gaussian_expectation(f: Callable, n_nodes: int) -> Callable:
    r"""Return Delta -> E[f(sqrt(Delta) xi)], differentiable to any order in Delta.

    The derivative rule is d/dDelta E[f(sqrt(Delta) xi)] = E[f''(sqrt(Delta) xi)] / 2.
    """
    nodes, weights = _hermite_rule(n_nodes)
    f2 = jax.grad(jax.grad(f))

    @jax.custom_jvp
    def expectation(delta):
        scale = jnp.sqrt(jnp.maximum(delta, 0.0))
        values = jax.vmap(f)(scale * nodes)
        return jnp.sum(values * weights, axis=-1)

    @expectation.defjvp
    def _jvp(primals, tangents):
        (delta,), (d_delta,) = primals, tangents
        second = _gaussian_expectation(f2, n_nodes)
        return expectation(delta), 0.5 * second(delta) * d_delta

    return expectation


def _shifted_expectation(f: Callable, n_nodes: int) -> Callable:
    r"""Return (mean, Delta) -> E[f(mean + sqrt(Delta) xi)], differentiable to any order.

    d/dmean = E[f'(.)] and d/dDelta = E[f''(.)] / 2 (heat equation), never through sqrt(Delta)."""
    nodes, weights = _hermite_rule(n_nodes)
    f1 = jax.grad(f)
    f2 = jax.grad(f1)

    @jax.custom_jvp
    def expectation(mean, delta):
        scale = jnp.sqrt(jnp.maximum(delta, 0.0))
        values = jax.vmap(f)(mean + scale * nodes)
        return jnp.sum(values * weights, axis=-1)

    @expectation.defjvp
    def _jvp(primals, tangents):
        (mean, delta), (d_mean, d_delta) = primals, tangents
        slope = _shifted_expectation(f1, n_nodes)(mean, delta)
        curvature = _shifted_expectation(f2, n_nodes)(mean, delta)
        return expectation(mean, delta), slope * d_mean + 0.5 * curvature * d_delta

    return expectation


def _erf_moments(mean, delta):
    """(E[phi], E[phi']) of erf(sqrt(pi)/2 x) over N(mean, Delta), in closed form."""
    spread = 1.0 + jnp.pi * delta / 2
    gain = 1.0 / jnp.sqrt(spread)
    return jax.scipy.special.erf(jnp.sqrt(jnp.pi) / 2 * mean * gain), gain * jnp.exp(-jnp.pi * mean**2 / (4 * spread))


def _relu_moments(mean, delta):
    """(E[phi], E[phi']) of relu over N(mean, Delta): (m Phi(m/s) + s phi(m/s), Phi(m/s)), s = sqrt(Delta)
    (Delta floored at 1e-30: the Delta-derivative is singular at Delta = 0, mean = 0)."""
    scale = jnp.sqrt(jnp.maximum(delta, 1e-30))
    z = mean / scale
    return mean * jax.scipy.stats.norm.cdf(z) + scale * jax.scipy.stats.norm.pdf(z), jax.scipy.stats.norm.cdf(z)


@dataclasses.dataclass(frozen=True)
class Nonlinearity:
    """A pointwise nonlinearity phi and its Gaussian gain g(Delta) (see module docstring).

    Args:
        name: label used in files and messages.
        phi: the JAX function R -> R applied elementwise.
        closed_gain: g(Delta) in closed form, or None to use Gauss-Hermite quadrature.
        n_nodes: quadrature nodes when ``closed_gain`` is None.
        is_linear: True only for the identity (the overlap dynamics are then exact).
        closed_moments: (mean, Delta) -> (E[phi(h)], E[phi'(h)]) for h ~ N(mean, Delta) in closed
            form (the mixture closure's averages), or None to use quadrature.
    """

    name: str
    phi: Callable
    closed_gain: Callable | None = None
    n_nodes: int = 128
    is_linear: bool = False
    closed_moments: Callable | None = None

    def __call__(self, x):
        return self.phi(x)

    def __reduce__(self):
        """A registered nonlinearity pickles as its name (its phi may be a lambda), so networks
        using it go to worker processes."""
        if REGISTRY.get(self.name) is self:
            return get_nonlinearity, (self.name,)
        return super().__reduce__()

    @functools.cached_property
    def is_odd(self) -> bool:
        """Whether phi(-x) = -phi(x) exactly (in float64) at 2001 points of [-10, 10] and 0: the
        particle engine then runs half of a mirror-symmetric cloud (:func:`~overlapflow.particles.fold`)."""
        with float64_scope():
            x = jnp.linspace(0.0, 10.0, 1001, dtype=jnp.float64)
            return bool(jnp.all(self.phi(-x) == -self.phi(x)))

    def derivative(self, x):
        """phi'(x), elementwise."""
        return jnp.vectorize(jax.grad(self.phi))(x)

    def gain(self, delta):
        """g(Delta) = E[phi'(sqrt(Delta) xi)], elementwise over an array of Delta >= 0."""
        if self.closed_gain is not None:
            return self.closed_gain(delta)
        return self.quadrature_gain(delta, self.n_nodes)

    def moments(self, mean, delta):
        """(E[phi(h)], E[phi'(h)]) for h ~ N(mean, Delta), elementwise: the averages of one Gaussian
        component of a mixture (mean 0: (E[phi], g(Delta)), 0 and the gain for an odd phi)."""
        if self.closed_moments is not None:
            return self.closed_moments(mean, delta)
        return self.quadrature_moments(mean, delta, self.n_nodes)

    def quadrature_moments(self, mean, delta, n_nodes: int | None = None):
        """:meth:`moments` by Gauss-Hermite quadrature (``n_nodes`` nodes), even where a closed form exists."""
        n = n_nodes or self.n_nodes
        value = jnp.vectorize(_shifted_expectation(self.phi, n))
        slope = jnp.vectorize(_shifted_expectation(jax.grad(self.phi), n))
        mean, delta = jnp.broadcast_arrays(jnp.asarray(mean, dtype=float), jnp.asarray(delta, dtype=float))
        return value(mean, delta), slope(mean, delta)

    def quadrature_gain(self, delta, n_nodes: int | None = None):
        """g(Delta) by Gauss-Hermite quadrature (``n_nodes`` nodes), even where a closed form exists."""
        expectation = _gaussian_expectation(jax.grad(self.phi), n_nodes or self.n_nodes)
        return jnp.vectorize(expectation)(jnp.asarray(delta, dtype=float))

    def gain_error(self, delta) -> float:
        """Estimated error of :meth:`gain` at Delta: 0 for a closed form, else |g_n - g_2n|."""
        if self.closed_gain is not None:
            return 0.0
        n = self.n_nodes
        with float64_scope():  # the quadrature's compiled programs are float64 ones
            return float(jnp.max(jnp.abs(self.quadrature_gain(delta, n) - self.quadrature_gain(delta, 2 * n))))

    def check_gain_accuracy(self, max_delta: float) -> float:
        """Return the gain's error estimate at ``max_delta`` and warn when it exceeds 1e-6."""
        error = self.gain_error(max_delta)
        if error > GAIN_ERROR_WARNING:
            warnings.warn(
                f"the Gauss-Hermite gain of phi={self.name!r} with {self.n_nodes} nodes has an "
                f"estimated error {error:.1e} at Delta = {max_delta:.3g} (the largest this run "
                f"visited); raise n_nodes (e.g. Nonlinearity(..., n_nodes={4 * self.n_nodes}))",
                RuntimeWarning,
                stacklevel=3,
            )
        return error


#: The nonlinearities known by name (to :class:`~overlapflow.LowRankRNN` and experiment configs), name -> value.
#: Extend it with :func:`register_nonlinearity`.
REGISTRY: dict[str, Nonlinearity] = {}


def register_nonlinearity(nonlinearity: Nonlinearity) -> Nonlinearity:
    """Make ``nonlinearity`` known by its name: ``LowRankRNN(phi=name)`` and ``phi = "name"`` in TOML then use it.

    Registering the same value again does nothing; another value under a taken name is refused.
    """
    if not isinstance(nonlinearity, Nonlinearity):
        raise TypeError(f"register_nonlinearity({nonlinearity!r}): must be an overlapflow.Nonlinearity")
    name = nonlinearity.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"Nonlinearity.name = {name!r}: must be a non-empty string")
    if REGISTRY.setdefault(name, nonlinearity) is not nonlinearity:
        raise ValueError(f"phi = {name!r}: already registered as {REGISTRY[name]!r}; choose another name")
    return nonlinearity


LINEAR = register_nonlinearity(
    Nonlinearity(
        "linear",
        lambda x: x,
        closed_gain=lambda d: jnp.ones_like(jnp.asarray(d, float)),
        is_linear=True,
        closed_moments=lambda m, d: (m + 0.0 * d, jnp.ones_like(m + d)),
    )
)
ERF = register_nonlinearity(
    Nonlinearity(
        "erf", _erf_phi, closed_gain=lambda d: 1.0 / jnp.sqrt(1.0 + jnp.pi * d / 2), closed_moments=_erf_moments
    )
)
TANH = register_nonlinearity(Nonlinearity("tanh", jnp.tanh))
RELU = register_nonlinearity(
    Nonlinearity(
        "relu", _relu, closed_gain=lambda d: 0.5 * jnp.ones_like(jnp.asarray(d, float)), closed_moments=_relu_moments
    )
)


def get_nonlinearity(phi: str | Callable | Nonlinearity) -> Nonlinearity:
    """Resolve a name, a JAX function or a :class:`Nonlinearity` to a :class:`Nonlinearity`."""
    if isinstance(phi, Nonlinearity):
        return phi
    if isinstance(phi, str):
        if phi not in REGISTRY:
            raise ValueError(f"phi = {phi!r}: unknown nonlinearity; allowed: {sorted(REGISTRY)} or a JAX function")
        return REGISTRY[phi]
    if callable(phi):
        name = getattr(phi, "__name__", "user")
        return Nonlinearity(name if name != "<lambda>" else "user", phi)
    raise TypeError(f"phi = {phi!r}: must be a name in {sorted(REGISTRY)}, a JAX function or a Nonlinearity")
