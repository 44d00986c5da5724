r"""The overlap engine: S (P, P) follows learning closed on the overlaps.

Gamma = sym(dl/dS) comes from autodiff of the reduced loss l(S), the ``closure`` (by default
:func:`~overlapflow.meanfield_loss`: exact for a linear network, the Gaussian closure for a
nonlinear one; any function ``closure(rnn, task, S, batch) -> loss`` plugs in). The step
(:mod:`overlapflow.engines.steps`) turns Gamma into the update:

- :class:`ExactStep` (default): S <- (I - 2 eta Gamma) S (I - 2 eta Gamma); full-network SGD for a
  linear network at any eta, N.
- :class:`EulerStep`: S <- S - 2 eta (S Gamma + Gamma S), the first-order step of the paper.
- :class:`VisibleOnlyStep`: naive descent on the visible overlaps as free scalars.

Optimisers: SGD; weight decay (Gamma <- Gamma + lambda I); heavy-ball and Nesterov momentum with
:class:`ExactStep` (the state is then a :class:`~overlapflow.optimizers.MomentumState`, the Gram matrix of
[theta | velocity]). Adam is refused: it does not close in overlap space.

Populations (the mixture closure): started from a :class:`~overlapflow.Mixture`, the state is the
mixture and the closure l(w, mu, C) (:func:`~overlapflow.meanfield_loss` takes a Mixture). In the
large-N limit each row moves by the same function of itself, theta <- theta - eta f(theta); on
component c, Stein's and Price's identities give its mean and mean slope from autodiff of l,

    E_c[f] = (1 / w_c) dl/dmu_c,        E_c[grad f] = 2 Gamma_c,   Gamma_c = sym(dl/dC_c) / w_c,

and the closure takes f affine on each component, f(theta) = b_c + 2 Gamma_c theta with
b_c = E_c[f] - 2 Gamma_c mu_c. The component stays Gaussian (:meth:`Mixture.push_affine`):

- exact: mu_c <- X_c mu_c - eta b_c, C_c <- X_c C_c X_c^T, X_c = I - 2 eta Gamma_c;
- euler: mu_c <- mu_c - eta E_c[f], C_c <- C_c - 2 eta (Gamma_c C_c + C_c Gamma_c).

For a linear network f is linear (b_c = 0, Gamma_c = Gamma for every c): every population then
moves exactly as the network's (any N, any eta). K = 1 with mu = 0 and an odd phi is the Gaussian
closure above (b = 0). Derivation: docs/theory.md. Momentum, the flow and visible-only steps are
not defined for mixtures and are refused.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..meanfield import current_variance, latent_trajectory, meanfield_loss
from ..mixture import Mixture
from ..optimizers import MomentumState, momentum_init, momentum_step
from ..overlaps import Overlaps, check_gram
from .base import Engine
from .steps import ExactStep, Step, as_step


def initial_overlaps(rnn, S0, name: str = "start") -> np.ndarray:
    """S0 (P, P) (an array or :class:`Overlaps`) checked as a Gram matrix of this network and
    symmetrised, in float64; errors name the argument ``name``."""
    S0 = np.asarray(S0.matrix if isinstance(S0, Overlaps) else S0, dtype=np.float64)
    if S0.shape != (rnn.n_vectors, rnn.n_vectors):
        raise ValueError(f"{name}: shape {S0.shape}; must be ({rnn.n_vectors}, {rnn.n_vectors}) for this network")
    check_gram(S0, name)
    return (S0 + S0.T) / 2


def check_overlap_optimizer(optimizer, step: Step | None) -> None:
    """Refuse what does not close in overlap space with ``step`` (None: the gradient flow)."""
    if not optimizer.closes_in_overlap_space:
        raise ValueError(
            f"optimizer = {optimizer.kind!r}: Adam does not close in overlap space. It rescales each neuron's "
            "coordinate separately, so the update is not theta X for a P x P matrix X and the overlaps' "
            "future depends on more than S. Train the full network with NetworkEngine('adam')."
        )
    if optimizer.beta and not (step is not None and step.takes_momentum):
        raise ValueError(
            f"optimizer = {optimizer.kind!r} with step = {'flow' if step is None else step.name!r}: "
            "momentum is closed in overlap space for step 'exact' only"
        )


@dataclasses.dataclass(frozen=True)
class OverlapEngine(Engine):
    """Learning in overlap space (module docstring).

    Args:
        optimizer: ``"sgd"``, ``"momentum"``, ``"nesterov"`` (with the exact step) or an
            :class:`~overlapflow.Optimizer` of those kinds.
        step: :class:`ExactStep` (default), :class:`EulerStep`, :class:`VisibleOnlyStep`, or a name
            of ``STEPS`` (``"exact"``, ``"euler"``, ``"visible-only"``).
        closure: the reduced loss ``closure(rnn, task, S, batch) -> scalar``.

    Example:
        >>> import overlapflow as of
        >>> rnn = of.LowRankRNN(rank=1, n_in=1, n_out=1, phi="linear", dt=0.1)
        >>> task = of.tasks.ExponentialFilter(c=0.2, a=1.0, t_max=2.0)
        >>> engine = of.OverlapEngine(step=of.EulerStep())
        >>> result = of.train(engine, rnn, task, of.Overlaps.from_dict(rnn, {}), lr=1e-2, epochs=3)
        >>> result.history.loss.shape
        (4,)

    ``start``: S0 (P, P) or :class:`~overlapflow.Overlaps`; a :class:`MomentumState` continues
    momentum; a :class:`~overlapflow.Mixture` runs the mixture closure (module docstring).
    """

    step: Step | str = ExactStep()
    closure: Callable = meanfield_loss

    kind = "overlaps"

    def check_optimizer(self) -> None:
        object.__setattr__(self, "step", as_step(self.step))
        check_overlap_optimizer(self.optimizer, self.step)

    def init(self, rnn, start):
        if isinstance(start, MomentumState):
            return start
        if isinstance(start, Mixture):
            if self.step.name not in ("exact", "euler") or self.optimizer.beta:
                raise ValueError(
                    f"start: a Mixture runs the mixture closure with step 'exact' or 'euler' and SGD (weight "
                    f"decay allowed); got step = {self.step.name!r}, optimizer = {self.optimizer.kind!r}"
                )
            return Mixture.create(start.weights, start.means, start.covariances, rnn, name="start")
        S0 = jnp.asarray(initial_overlaps(rnn, start))
        return momentum_init(S0) if self.optimizer.beta else S0

    def loss_and_gradient(self, rnn, task, state, batch):
        if isinstance(state, Mixture):
            return self._mixture_gradient(rnn, task, state, batch)
        S = self.overlaps(state)
        loss, G = jax.value_and_grad(lambda s: self.closure(rnn, task, s, batch))(S)
        Gamma = (G + G.T) / 2 + self.optimizer.weight_decay * jnp.eye(S.shape[0], dtype=S.dtype)
        return loss, Gamma

    def loss(self, rnn, task, state, batch):
        return self.closure(rnn, task, state if isinstance(state, Mixture) else self.overlaps(state), batch)

    def _mixture_gradient(self, rnn, task, mixture: Mixture, batch):
        """The loss and, per component, Gamma_c (K, P, P) and the mean row update E_c[f] (K, P) (module docstring)."""

        def loss(means, covariances):
            return self.closure(rnn, task, Mixture(mixture.weights, means, covariances), batch)

        value, (d_means, d_covs) = jax.value_and_grad(loss, argnums=(0, 1))(mixture.means, mixture.covariances)
        w = jnp.where(mixture.weights > 0, mixture.weights, 1.0)  # components of weight 0 (padding) stay put
        decay = self.optimizer.weight_decay
        eye = jnp.eye(mixture.means.shape[-1], dtype=mixture.means.dtype)
        Gamma = (d_covs + jnp.swapaxes(d_covs, -1, -2)) / (2 * w[:, None, None]) + decay * eye
        return value, (Gamma, d_means / w[:, None] + 2 * decay * mixture.means)

    def update(self, rnn, state, gradient, lr):
        if isinstance(state, Mixture):
            return self.step.mixture(state, *gradient, lr)
        if isinstance(state, MomentumState):
            return momentum_step(state, gradient, lr, self.optimizer.beta, self.optimizer.kind == "nesterov")
        return self.step(rnn, state, gradient, lr)

    def overlaps(self, state) -> jax.Array:
        if isinstance(state, Mixture):
            return state.overlaps
        return state.S if isinstance(state, MomentumState) else state

    def carry(self, state):
        return state if isinstance(state, Mixture) else self.overlaps(state)

    def population_records(self, state) -> dict:
        if not isinstance(state, Mixture):
            return {}
        return {"population_means": state.means, "population_overlaps": state.second_moments}

    def population_weights(self, state):
        return state.weights if isinstance(state, Mixture) else None

    def attrs(self, rnn, state) -> dict:
        attrs = {"engine": "overlaps", "method": self.step.name, "optimizer": self.optimizer.describe()}
        if isinstance(state, Mixture):
            attrs.update(closure="mixture", components=int(state.weights.shape[-1]))
        return attrs

    def label(self, state) -> str:
        return f"overlaps ({self.step.name})"

    def run_attrs(self, rnn, task, key, overlaps, populations=None) -> dict:
        phi = rnn.nonlinearity
        closed = phi.closed_moments if populations is not None else phi.closed_gain
        if rnn.is_linear or closed is not None or not len(overlaps):
            return {}
        return gain_accuracy(rnn, task, key, overlaps, populations)


def gain_accuracy(rnn, task, key, overlaps, populations=None) -> dict:
    """Largest Delta visited (at up to 20 recorded states, on epoch 0's batch) and the quadrature's
    estimated error there (warns above 1e-6): Delta = k^T S[B, B] k, or with populations the largest
    of every component's own k^T C_c[B, B] k (their means shift the nodes, not their spread)."""
    picks = np.unique(np.linspace(0, len(overlaps) - 1, 20).astype(int))
    inputs = task.sample(key, rnn.dt).inputs
    if populations is None:
        max_delta = float(_max_current_variance(jnp.asarray(overlaps[picks]), inputs, rnn=rnn))
    else:
        means = jnp.asarray(populations["population_means"][picks])
        moments = jnp.asarray(populations["population_overlaps"][picks])
        covariances = moments - means[..., :, None] * means[..., None, :]
        weights = jnp.broadcast_to(jnp.asarray(populations["population_weights"]), means.shape[:2])
        max_delta = float(_max_component_variance(Mixture(weights, means, covariances), inputs, rnn=rnn))
    return {"max_delta": max_delta, "gain_error": rnn.nonlinearity.check_gain_accuracy(max_delta)}


@functools.partial(jax.jit, static_argnames=("rnn",))
def _max_component_variance(mixtures, inputs, *, rnn):
    B = rnn.slices["B"]

    def one(mixture):
        k = latent_trajectory(rnn, mixture, inputs)
        return jnp.max(jnp.einsum("bti,cij,btj->btc", k, mixture.covariances[:, B, B], k))

    return jnp.max(jax.vmap(one)(mixtures))


@functools.partial(jax.jit, static_argnames=("rnn",))
def _max_current_variance(states, inputs, *, rnn):
    B = rnn.slices["B"]
    one = lambda S: jnp.max(current_variance(latent_trajectory(rnn, S, inputs), S[B, B]))
    return jnp.max(jax.vmap(one)(states))
