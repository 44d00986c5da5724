r"""The overlap engine's step methods: small objects, as diffrax's solvers are.

A step turns the overlaps S (P, P) and Gamma = sym(dl/dS) into the next S at the overlap-scale
rate eta (:mod:`overlapflow.flow` has the formulas):

==================  ==============================================  =============================
step                S <-                                            mixtures (per component c)
==================  ==============================================  =============================
``ExactStep()``     X S X, X = I - 2 eta Gamma (full-network SGD    mu_c <- X_c mu_c - eta b_c,
                    of a linear network at any eta and N)           C_c <- X_c C_c X_c^T
``EulerStep()``     S - 2 eta (S Gamma + Gamma S), the paper's      mu_c <- mu_c - eta E_c[f],
                    first-order step                                C_c <- C_c - 2 eta (Gamma_c C_c + C_c Gamma_c)
``VisibleOnlyStep`` naive descent on the visible overlaps as free   refused
                    scalars (invisible overlaps never move)
==================  ==============================================  =============================

``OverlapEngine(step=EulerStep())`` picks one; ``step="euler"`` names it (``STEPS``). The gradient
flow is not a step: it is :class:`~overlapflow.engines.FlowEngine`, whose solver is diffrax's.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from ..flow import euler_step, exact_step, visible_only_step
from ..mixture import Mixture
from ..overlaps import visible_mask


@dataclasses.dataclass(frozen=True)
class Step(abc.ABC):
    """One discrete update of the overlaps (module docstring). Subclasses are frozen dataclasses."""

    #: The step's name: in ``STEPS``, configs (``engines.overlaps``) and a History's ``method`` attribute.
    name: ClassVar[str]
    #: Whether heavy-ball and Nesterov momentum close in overlap space with this step.
    takes_momentum: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(self, rnn, S: jax.Array, Gamma: jax.Array, lr) -> jax.Array:
        """The next overlaps (P, P) from S (P, P), Gamma (P, P) and the rate ``lr``."""

    def mixture(self, mixture: Mixture, Gamma: jax.Array, mean_drift: jax.Array, lr) -> Mixture:
        """The next mixture from each component's Gamma_c (K, P, P) and mean row update E_c[f] (K, P)."""
        raise ValueError(
            f"start: a Mixture runs the mixture closure with step 'exact' or 'euler'; got step = {self.name!r}"
        )


@dataclasses.dataclass(frozen=True)
class ExactStep(Step):
    """S <- X S X with X = I - 2 eta Gamma: exact for a linear network at any eta and N."""

    name = "exact"
    takes_momentum = True

    def __call__(self, rnn, S, Gamma, lr):
        return exact_step(S, Gamma, lr)

    def mixture(self, mixture, Gamma, mean_drift, lr):
        # theta -> X theta - eta b on each component, b = E_c[f] - 2 Gamma_c mu_c
        X = jnp.eye(Gamma.shape[-1], dtype=Gamma.dtype) - 2 * lr * Gamma
        return mixture.push_affine(X, lr * (mean_drift - 2 * jnp.einsum("kij,kj->ki", Gamma, mixture.means)))


@dataclasses.dataclass(frozen=True)
class EulerStep(Step):
    """S <- S - 2 eta (S Gamma + Gamma S): the first-order step of the paper."""

    name = "euler"

    def __call__(self, rnn, S, Gamma, lr):
        return euler_step(S, Gamma, lr)

    def mixture(self, mixture, Gamma, mean_drift, lr):
        GC = Gamma @ mixture.covariances
        return Mixture(
            mixture.weights,
            mixture.means - lr * mean_drift,
            mixture.covariances - 2 * lr * (GC + jnp.swapaxes(GC, -1, -2)),
        )


@dataclasses.dataclass(frozen=True)
class VisibleOnlyStep(Step):
    """Naive descent on the visible overlaps as free scalars (no Gram map): what learning would be
    if the visible overlaps were the parameters."""

    name = "visible-only"

    def __call__(self, rnn, S, Gamma, lr):
        return visible_only_step(S, Gamma, lr, jnp.asarray(visible_mask(rnn)))


#: step name -> step class
STEPS: dict[str, type[Step]] = {step.name: step for step in (ExactStep, EulerStep, VisibleOnlyStep)}


def as_step(step: Step | str) -> Step:
    """A :class:`Step`, or the step of a name in ``STEPS``."""
    if isinstance(step, Step):
        return step
    if isinstance(step, str) and step in STEPS:
        return STEPS[step]()
    if step == "flow":
        raise ValueError("step = 'flow': the gradient flow is not a step; use overlapflow.FlowEngine()")
    raise ValueError(f"step = {step!r}: unknown; allowed: {list(STEPS)} or an overlapflow Step")
