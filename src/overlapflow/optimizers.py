r"""Optimisers, one description for both engines.

Every optimiser acts on the full network through optax. Those that are equivariant under
rotations of neuron space (SGD, heavy-ball and Nesterov momentum, weight decay) keep
theta_t = theta_0 X_t for a P x P matrix X_t, so their learning closes in overlap space; Adam
rescales each neuron's coordinate separately and does not close.

Learning rates are on the overlap scale eta:

- SGD and momentum: the network is trained with eta N (so that overlaps move O(1) per epoch at
  any N); then dL/dtheta = (2/N) theta Gamma and one step is theta <- theta (I - 2 eta Gamma).
- Weight decay lambda (overlap scale) adds lambda tr(S) to the loss: Gamma <- Gamma + lambda I,
  i.e. optax's ``add_decayed_weights(2 lambda / N)`` before the step.
- Adam: eta is used as given (Adam's step is already O(eta) per coordinate, whatever N).

The learning-rate drop (the paper's A/B -> C schedule) is an optax transformation of the rate that
sees the loss (:func:`lr_drop`, as optax's ``contrib.reduce_on_plateau`` sees it): its state, whether
the drop has fired, is part of a run's state (:class:`~overlapflow.engines.TrainState`) and resumes
with it.

Momentum in overlap space (theory section 5): with Vel the velocity, D = theta^T Vel / N and
W = Vel^T Vel / N (both 0 at the start),

    Vel'   = beta Vel - 2 eta theta Gamma
    theta' = theta Y + c Vel'              heavy ball: Y = I, c = 1; Nesterov: Y = I - 2 eta Gamma, c = beta

so, with E = theta^T Vel' / N = beta D - 2 eta S Gamma,

    W' = beta^2 W - 2 eta beta (D^T Gamma + Gamma D) + 4 eta^2 Gamma S Gamma
    S' = Y S Y + c (Y E + E^T Y) + c^2 W'
    D' = Y E + c W'
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

KINDS = ("sgd", "momentum", "nesterov", "adam")


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """An optimiser for both engines.

    Args:
        kind: ``"sgd"``, ``"momentum"`` (heavy ball), ``"nesterov"`` or ``"adam"``.
        momentum: beta in [0, 1) for momentum / Nesterov.
        weight_decay: lambda >= 0 on the overlap scale (adds lambda tr(S) to the loss).
        b1: Adam's first-moment decay.
        b2: Adam's second-moment decay.
        eps: Adam's epsilon.
        lr_drop_below: if set, every update from the first epoch whose loss is below this value on
            is divided by ``lr_drop_factor`` (the paper's A/B -> C schedule: 0.015 and 5). For SGD
            and Adam this is dividing the learning rate; momentum optimisers refuse it.
        lr_drop_factor: the divisor (> 1).
    """

    kind: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    lr_drop_below: float | None = None
    lr_drop_factor: float = 5.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"optimizer kind = {self.kind!r}: unknown; allowed: {list(KINDS)}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"optimizer momentum = {self.momentum!r}: must be in [0, 1)")
        if not self.weight_decay >= 0.0:
            raise ValueError(f"optimizer weight_decay = {self.weight_decay!r}: must be >= 0")
        if self.lr_drop_below is not None:
            if not self.lr_drop_below > 0 or not self.lr_drop_factor > 1:
                raise ValueError(
                    f"optimizer lr_drop_below = {self.lr_drop_below!r}, lr_drop_factor = {self.lr_drop_factor!r}: "
                    "need a positive threshold and a factor > 1"
                )
            if self.beta:
                raise ValueError(
                    f"optimizer kind = {self.kind!r} with lr_drop_below: the drop is for SGD and Adam only"
                )

    @property
    def rate_schedule(self) -> optax.GradientTransformationExtraArgs:
        """The transformation of the learning rate: :func:`lr_drop` when ``lr_drop_below`` is set,
        else the rate unchanged (``optax.identity``)."""
        if self.lr_drop_below is None:
            return constant_rate()
        return lr_drop(float(self.lr_drop_below), float(self.lr_drop_factor))

    @property
    def closes_in_overlap_space(self) -> bool:
        """False for Adam: it is not rotation-equivariant, so overlaps alone do not determine it."""
        return self.kind != "adam"

    @property
    def beta(self) -> float:
        """The momentum coefficient actually used (0 for plain SGD)."""
        return self.momentum if self.kind in ("momentum", "nesterov") else 0.0

    def network_transformation(self, lr: float, N: int) -> optax.GradientTransformation:
        """The optax transformation that trains an N-neuron network at overlap-scale rate lr."""
        if self.kind == "adam":
            step = optax.adam(lr, b1=self.b1, b2=self.b2, eps=self.eps)
            decay = self.weight_decay * 2 / N
        else:
            step = optax.sgd(lr * N, momentum=self.beta or None, nesterov=self.kind == "nesterov")
            decay = self.weight_decay * 2 / N
        return optax.chain(optax.add_decayed_weights(decay), step) if self.weight_decay else step

    def describe(self) -> str:
        """The optimiser with the settings that apply to its kind only (stored in Histories' attrs):
        ``Optimizer(kind='sgd')``, ``Optimizer(kind='momentum', momentum=0.9)``,
        ``Optimizer(kind='adam', b1=0.9, b2=0.999, eps=1e-08)``; weight decay and the learning-rate
        drop when set. ``repr`` shows every field, those that do not apply included."""
        fields = {"kind": self.kind}
        if self.kind in ("momentum", "nesterov"):
            fields["momentum"] = self.momentum
        if self.kind == "adam":
            fields.update(b1=self.b1, b2=self.b2, eps=self.eps)
        if self.weight_decay:
            fields["weight_decay"] = self.weight_decay
        if self.lr_drop_below is not None:
            fields.update(lr_drop_below=self.lr_drop_below, lr_drop_factor=self.lr_drop_factor)
        return f"Optimizer({', '.join(f'{key}={value!r}' for key, value in fields.items())})"


def as_optimizer(optimizer) -> Optimizer:
    """Resolve a kind name or an :class:`Optimizer`."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        return Optimizer(optimizer)
    raise TypeError(f"optimizer = {optimizer!r}: must be one of {list(KINDS)} or an overlapflow.Optimizer")


def constant_rate() -> optax.GradientTransformationExtraArgs:
    """The rate unchanged (``optax.identity``, accepting the loss as ``value``)."""
    return optax.with_extra_args_support(optax.identity())


class LrDropState(NamedTuple):
    """The learning-rate drop's state: whether it has fired (a bool array, () or (K,) for K runs)."""

    dropped: jax.Array


def lr_drop(threshold: float, factor: float) -> optax.GradientTransformationExtraArgs:
    """The learning-rate drop as an optax transformation of the rate that sees the loss.

    ``rate, state = lr_drop(threshold, factor).update(lr, state, value=loss)`` gives the rate of this
    epoch's update: ``lr / factor`` from the first epoch whose loss (of the state before its update)
    is below ``threshold`` on, ``lr`` before it. ``init`` starts undropped."""

    def init(rate) -> LrDropState:
        return LrDropState(jnp.asarray(False))

    def update(rate, state: LrDropState, params=None, *, value, **extra_args):
        dropped = state.dropped | (value < threshold)
        return rate * jnp.where(dropped, 1.0 / factor, 1.0), LrDropState(dropped)

    return optax.GradientTransformationExtraArgs(init, update)


class MomentumState(NamedTuple):
    """Overlap-space momentum state: S = theta^T theta / N, D = theta^T Vel / N, W = Vel^T Vel / N (P, P)."""

    S: jax.Array
    D: jax.Array
    W: jax.Array


def momentum_init(S: jax.Array) -> MomentumState:
    zeros = jnp.zeros_like(S)
    return MomentumState(S, zeros, zeros)


def momentum_step(state: MomentumState, Gamma: jax.Array, lr, beta, nesterov: bool) -> MomentumState:
    """One heavy-ball or Nesterov step in overlap space (module docstring); exact for linear networks."""
    S, D, W = state
    E = beta * D - 2 * lr * S @ Gamma
    GD = Gamma @ D
    W_new = beta**2 * W - 2 * lr * beta * (GD + GD.T) + 4 * lr**2 * Gamma @ S @ Gamma
    if nesterov:
        Y = jnp.eye(S.shape[0], dtype=S.dtype) - 2 * lr * Gamma
        YE = Y @ E
        return MomentumState(Y @ S @ Y + beta * (YE + YE.T) + beta**2 * W_new, YE + beta * W_new, W_new)
    return MomentumState(S + E + E.T + W_new, E + W_new, W_new)
