r"""Engines on the rows of theta: the full network and the particles of the N -> infinity limit.

Both train rows theta (n, P) by an optax transformation on the network loss, with population
averages weighted by w (n,): w = 1/N for a network of N neurons, quadrature weights for particles
(:mod:`overlapflow.particles`). Learning rates are on the overlap scale eta: the transformation is
built for n rows at rate eta n, and each row's gradient is divided by n w_i, so row i moves by
eta dL/dtheta_i / w_i, the per-row update of a network of any size (for the network: eta N dL/dtheta).
The overlaps are S = theta^T diag(w) theta.

Populations: rows may carry labels (n,) (a network's ``populations``, or the component each particle
of a :class:`~overlapflow.Mixture` start was drawn from); the History then records each population's
mean and second moment (:func:`~overlapflow.mixture.population_moments`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ..mixture import Mixture, check_labels, population_moments
from ..network import gram, network_loss
from ..optimizers import KINDS, Optimizer
from ..overlaps import check_gram
from ..particles import RULES, Particles, fold, make_particles, unfold
from .base import Engine


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["theta", "weights", "opt_state", "labels"],
    meta_fields=["mirrored", "n_populations"],
)
@dataclasses.dataclass(frozen=True)
class RowState:
    """theta (n, P); weights (n,) or None (a network: 1/N); the optimiser's state; ``mirrored``
    (static): None, or the rows are the folded half of a mirror-symmetric cloud (particles with an
    odd phi) whose last ``mirrored`` rows are at 0 (:func:`~overlapflow.particles.fold`); ``labels``
    (n,) the population of each row, or None, and ``n_populations`` (static) K."""

    theta: jax.Array
    weights: jax.Array | None
    opt_state: Any
    mirrored: int | None = None
    labels: jax.Array | None = None
    n_populations: int | None = None


def _transformation(optimizer, lr, n: int) -> optax.GradientTransformation:
    """The optax transformation for n rows at overlap-scale rate lr (a number or a traced scalar)."""
    if isinstance(optimizer, Optimizer):
        return optimizer.network_transformation(lr, n)
    transformation = optimizer(lr * n)
    if not isinstance(transformation, optax.GradientTransformation):
        raise TypeError(
            f"optimizer factory returned {transformation!r}; it must return an optax GradientTransformation"
        )
    return transformation


def _check_theta(rnn, theta, name: str) -> jax.Array:
    theta = jnp.asarray(theta)
    if theta.ndim != 2 or theta.shape[1] != rnn.n_vectors or not jnp.issubdtype(theta.dtype, jnp.floating):
        raise ValueError(
            f"{name}: shape {theta.shape}, dtype {theta.dtype}; must be a float (N, P) array with P = {rnn.n_vectors}"
        )
    return theta


@dataclasses.dataclass(frozen=True)
class _RowsEngine(Engine):
    def check_optimizer(self) -> None:
        if not isinstance(self.optimizer, Optimizer) and not callable(self.optimizer):
            raise TypeError(
                f"optimizer = {self.optimizer!r}: must be one of {list(KINDS)}, an overlapflow.Optimizer "
                "or a callable lr -> optax transformation"
            )

    def _fresh(self, theta, weights, mirrored: int | None = None, labels=None) -> RowState:
        # optax states do not depend on the rate: built at rate 1
        opt_state = _transformation(self.optimizer, 1.0, theta.shape[0]).init(theta)
        if labels is None:
            return RowState(theta, weights, opt_state, mirrored)
        labels = check_labels(labels, theta.shape[0])
        K = int(labels.max()) + 1
        return RowState(theta, weights, opt_state, mirrored, jnp.asarray(labels, dtype=jnp.int32), K)

    def loss_and_gradient(self, rnn, task, state: RowState, batch):
        theta, weights = state.theta, state.weights
        loss, grad = jax.value_and_grad(lambda th: network_loss(rnn, task, th, batch, weights))(theta)
        if weights is not None:
            grad = grad / (theta.shape[0] * weights[:, None])
        return loss, grad

    def update(self, rnn, state: RowState, gradient, lr) -> RowState:
        theta = state.theta
        updates, opt_state = _transformation(self.optimizer, lr, theta.shape[0]).update(
            gradient, state.opt_state, theta
        )
        return dataclasses.replace(state, theta=optax.apply_updates(theta, updates), opt_state=opt_state)

    def overlaps(self, state: RowState) -> jax.Array:
        return gram(state.theta, state.weights)

    def population_records(self, state: RowState) -> dict:
        if state.labels is None:
            return {}
        means, moments = population_moments(state.theta, state.weights, state.labels, state.n_populations)
        return {"population_means": means, "population_overlaps": moments}

    def carry_populations(self, state: RowState):
        return state.labels  # a cloud with populations is never folded: its rows are carry's rows

    def population_weights(self, state: RowState):
        if state.labels is None:
            return None
        w = jnp.full(state.labels.shape[-1], 1.0 / state.labels.shape[-1]) if state.weights is None else state.weights
        return jax.ops.segment_sum(w, state.labels, state.n_populations)

    def optimizer_label(self) -> str:
        if isinstance(self.optimizer, Optimizer):
            return self.optimizer.describe()
        return getattr(self.optimizer, "__name__", repr(self.optimizer))


@dataclasses.dataclass(frozen=True)
class NetworkEngine(_RowsEngine):
    """The full network theta (N, P), trained by an optax optimiser at rate eta N (module docstring).

    Args:
        optimizer: ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, an
            :class:`~overlapflow.Optimizer`, or any factory ``learning_rate -> optax.GradientTransformation``
            (called with eta N).

    ``start``: theta (N, P), float32 or float64 (the run's dtype); ``populations`` (N,) labels.
    """

    kind = "network"

    def init(self, rnn, start, populations=None) -> RowState:
        return self._fresh(_check_theta(rnn, start, "theta0"), None, labels=populations)

    def carry(self, state: RowState) -> jax.Array:
        return state.theta

    def attrs(self, rnn, state: RowState) -> dict:
        theta = state.theta
        return {
            "engine": "network",
            "N": int(theta.shape[-2]),
            "dtype": str(theta.dtype),
            "optimizer": self.optimizer_label(),
        }

    def label(self, state: RowState) -> str:
        return f"network N={state.theta.shape[-2]}"


@dataclasses.dataclass(frozen=True)
class ParticleEngine(_RowsEngine):
    """The N -> infinity limit without the Gaussian closure: weighted particles for the law of the
    rows (:mod:`overlapflow.particles`).

    Args:
        rule: ``"split"`` (the default: ``nodes`` per direction inside phi, ``right_nodes``
            outside), ``"gauss-hermite"`` (``nodes`` per direction), ``"smolyak"`` (``level``) or
            ``"qmc"`` (``n`` particles, ``seed``); :mod:`overlapflow.particles`. The default, split
            5 x 3, is the cheapest rule measured within 1e-6 of a fine grid on the paper's flip-flop
            before learning (1e-8 after 200 epochs) that also stays within 3e-3 of it after learning
            (fig 8, 2000 epochs, against split 8 x 4: 2.5e-3; split 4 x 2, within 3.3e-7 before
            learning, ends 0.064 away, further than the Gaussian closure; docs/mixture_closure.md).
            The History's attrs name the rule.
        optimizer: SGD-type only (Adam's per-coordinate scale has no N -> infinity limit at rate eta).
        mirror: when phi is odd and the cloud mirror-symmetric (every rule is), run its half
            (:func:`~overlapflow.particles.fold`): the same numbers at half the cost. The state then
            holds the half; :meth:`carry` gives the whole cloud.

    ``start``: overlaps S0 (P, P) (rows start as N(0, S0), sampled by the rule), a
    :class:`~overlapflow.Mixture` (one cloud per component, by the rule for its covariance, shifted
    by its mean, at weights w_k times the rule's; labelled by component) or :class:`Particles`
    (``populations``: their labels). A cloud with populations is run whole (not mirrored).
    """

    rule: str = "split"
    nodes: int = 5
    n: int = 2**14
    seed: int = 0
    level: int = 4
    right_nodes: int = 3
    mirror: bool = True

    kind = "particles"

    def check_optimizer(self) -> None:
        super().check_optimizer()
        if not isinstance(self.optimizer, Optimizer) or not self.optimizer.closes_in_overlap_space:
            raise ValueError(
                f"optimizer = {self.optimizer!r}: the particle engine runs SGD-type optimisers only "
                "('sgd', 'momentum', 'nesterov' or an overlapflow.Optimizer of those kinds)"
            )
        if self.rule not in RULES:
            raise ValueError(f"rule = {self.rule!r}: unknown particle rule; allowed: {list(RULES)}")

    def init(self, rnn, start, populations=None) -> RowState:
        if isinstance(start, Mixture):
            start, populations = self._mixture_cloud(rnn, start)
        elif not isinstance(start, Particles):
            S0 = jnp.asarray(getattr(start, "matrix", start), dtype=jnp.float64)
            check_gram(S0, "S0")
            start = self._cloud(rnn, S0)
        _check_theta(rnn, start.theta, "particles.theta")
        if populations is not None:
            return self._fresh(jnp.asarray(start.theta), jnp.asarray(start.weights), labels=populations)
        folded = fold(start) if self.mirror and rnn.nonlinearity.is_odd else None
        start, at_zero = (start, None) if folded is None else folded
        return self._fresh(jnp.asarray(start.theta), jnp.asarray(start.weights), mirrored=at_zero)

    def _cloud(self, rnn, covariance) -> Particles:
        return make_particles(
            covariance, self.rule, self.nodes, self.n, self.seed, self.level, self.right_nodes, rnn.n_left
        )

    def _mixture_cloud(self, rnn, mixture: Mixture) -> tuple[Particles, jax.Array]:
        """One cloud per component (the rule for C_k, shifted by mu_k, weights times w_k) and its labels."""
        mixture = Mixture.create(mixture.weights, mixture.means, mixture.covariances, rnn, name="start")
        clouds = [self._cloud(rnn, C) for C in mixture.covariances]
        theta = jnp.concatenate([c.theta + mu for c, mu in zip(clouds, mixture.means, strict=True)])
        weights = jnp.concatenate([c.weights * w for c, w in zip(clouds, mixture.weights, strict=True)])
        labels = jnp.concatenate([jnp.full(len(c), k, dtype=jnp.int32) for k, c in enumerate(clouds)])
        return Particles(theta, weights), labels

    def carry(self, state: RowState) -> Particles:
        cloud = Particles(state.theta, state.weights)
        return cloud if state.mirrored is None else unfold(cloud, state.mirrored)

    def attrs(self, rnn, state: RowState) -> dict:
        attrs = {"engine": "particles", "rule": self.rule, "n_particles": _cloud_size(state)}
        attrs["mirrored"] = int(state.mirrored is not None)
        if self.rule in ("gauss-hermite", "split"):
            attrs["nodes"] = self.nodes
        if self.rule == "split":
            attrs["right_nodes"] = self.right_nodes
        if self.rule == "smolyak":
            attrs["level"] = self.level
        return {**attrs, "dtype": str(state.theta.dtype), "optimizer": self.optimizer_label()}

    def label(self, state: RowState) -> str:
        return f"particles n={_cloud_size(state)}"


def _cloud_size(state: RowState) -> int:
    """Particles of the whole cloud (a folded half counts its mirror images)."""
    n = int(state.weights.shape[-1])
    return n if state.mirrored is None else 2 * n - state.mirrored
