r"""The adaptive mixture closure: components that stretch are split again during learning.

The mixture closure (:mod:`overlapflow.engines.overlap`) takes each row's update f affine on each
Gaussian component. It is exact where phi' is constant over a component, and its error grows with
the spread of phi'(h) over the component's rows: learning shears a component (a row's (m, u) update is
its (v, z) times phi'(h)), its currents spread, phi' varies over it, and the component stops being
Gaussian. This module measures that spread and splits the components where it is large:

- stretch of component c, on a batch: s_c = w_c mean_{b, t} Var_c[phi'(h)], h ~ N(mu_c[B] . k_t,
  k_t^T C_c[B, B] k_t) along the reduced network's own latents k_t (Gauss-Hermite);
- the direction of the split: the whitened direction of the (m, u) block along which the currents
  spread most over the trial, the top eigenvector u of C^1/2 M C^1/2 with M = mean_{b,t} k_t k_t^T
  (C = C_c[B, B]); the split coordinate is x = u^T C^-1/2 (b - mu_c[B]) ~ N(0, 1);
- the split: :meth:`~overlapflow.Mixture.refine` with ``nodes`` Gauss-Hermite nodes along x (width
  0: first and second moments kept, and every moment of degree < 2 nodes along x).

:func:`train_adaptive` runs the overlap engine in segments of ``every`` epochs, and after each splits
the most stretched components (above ``threshold``) while the budget ``max_components`` allows. The
state is padded with components of weight 0 to the next power of two, so that a run compiles a
few programs, not one per K. Components are never merged back.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .engines import OverlapEngine, TrainState
from .meanfield import latent_trajectory
from .mixture import Mixture
from .model import LowRankRNN
from .precision import float64
from .quadrature import gauss_hermite
from .tasks import AbstractTask
from .training import train

STRETCH_NODES = 48


@float64
def component_stretch(rnn: LowRankRNN, mixture: Mixture, inputs: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Stretch s_c (K,) of each component on ``inputs`` (B, T, n_in), and M = mean_{b,t} k k^T (d, d)
    of the reduced network's latents (module docstring)."""
    k = latent_trajectory(rnn, mixture, inputs)  # (B, T, d)
    B = rnn.slices["B"]
    mean = jnp.einsum("btd,cd->btc", k, mixture.means[:, B])
    variance = jnp.einsum("bti,cij,btj->btc", k, mixture.covariances[:, B, B], k)
    x, w = gauss_hermite(STRETCH_NODES)
    slope = rnn.nonlinearity.derivative(mean[..., None] + jnp.sqrt(jnp.maximum(variance, 0.0))[..., None] * x)
    spread = jnp.einsum("...n,n->...", slope**2, w) - jnp.einsum("...n,n->...", slope, w) ** 2
    M = jnp.einsum("bti,btj->ij", k, k) / (k.shape[0] * k.shape[1])
    return np.asarray(mixture.weights * jnp.mean(spread, axis=(0, 1))), np.asarray(M)


def split_direction(rnn: LowRankRNN, mixture: Mixture, c: int, M: np.ndarray) -> np.ndarray:
    """The direction D (P,) of the split of component c: D^T (theta - mu_c) = x (module docstring)."""
    B = rnn.slices["B"]
    C = np.asarray(mixture.covariances[c])[B, B]
    lam, E = np.linalg.eigh(C)
    lam = np.clip(lam, 0.0, None)
    root = (E * np.sqrt(lam)) @ E.T
    u = np.linalg.eigh(root @ M @ root)[1][:, -1]
    keep = lam > 1e-12 * max(lam.max(), 1e-300)
    D = np.zeros(mixture.means.shape[-1])
    D[B] = (E[:, keep] / np.sqrt(lam[keep])) @ (E[:, keep].T @ u)
    return D


@dataclasses.dataclass(frozen=True)
class Hierarchy:
    """Settings of the adaptive mixture closure.

    Args:
        every: epochs between checks.
        threshold: split components whose stretch s_c exceeds it.
        max_components: the budget K (splits stop there).
        nodes: components per split (Gauss-Hermite nodes along the split direction).
    """

    every: int = 50
    threshold: float = 1e-3
    max_components: int = 16
    nodes: int = 3

    def __post_init__(self):
        for name in ("every", "max_components", "nodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "nodes" else 1):
                raise ValueError(f"Hierarchy.{name} = {value!r}: must be an integer >= {2 if name == 'nodes' else 1}")
        if not self.threshold >= 0:
            raise ValueError(f"Hierarchy.threshold = {self.threshold!r}: must be a number >= 0")

    def refine(self, rnn: LowRankRNN, mixture: Mixture, inputs) -> Mixture:
        """Split the most stretched components above ``threshold`` while the budget allows."""
        stretch, M = component_stretch(rnn, mixture, inputs)
        chosen, K = [], mixture.n_components
        for c in np.argsort(-stretch):
            if stretch[c] <= self.threshold or K + self.nodes - 1 > self.max_components:
                break
            chosen.append(int(c))
            K += self.nodes - 1
        directions = {c: split_direction(rnn, mixture, c, M) for c in chosen}
        for c in sorted(chosen, reverse=True):  # from the last: the indices of the others stay
            mixture = _split(mixture, c, directions[c], self.nodes)
        return mixture


def _split(mixture: Mixture, c: int, D: np.ndarray, nodes: int) -> Mixture:
    """Component c refined into ``nodes`` components; the new ones go to the end (indices stay)."""
    refined = mixture.refine(c, D[:, None], [nodes])
    order = [i for i in range(refined.n_components) if not c <= i < c + nodes] + list(range(c, c + nodes))
    return jax.tree.map(lambda a: a[np.asarray(order)], refined)


def _padded(mixture: Mixture) -> Mixture:
    """The mixture with components of weight 0 up to the next power of two (they stay put)."""
    K = mixture.n_components
    extra = (1 << (K - 1).bit_length()) - K
    pad = lambda a: jnp.concatenate([a, jnp.zeros((extra,) + a.shape[1:], a.dtype)])
    return jax.tree.map(pad, mixture)


def _unpadded(mixture: Mixture, K: int) -> Mixture:
    return jax.tree.map(lambda a: a[:K], mixture)


@float64
def train_adaptive(
    rnn: LowRankRNN,
    task: AbstractTask,
    start,
    lr: float,
    epochs: int,
    hierarchy: Hierarchy = Hierarchy(),
    *,
    key: jax.Array | None = None,
    engine: OverlapEngine | None = None,
) -> tuple[xr.Dataset, Mixture]:
    """The adaptive mixture closure from ``start`` (S0 or a Mixture) for ``epochs`` epochs.

    Every ``hierarchy.every`` epochs the components are checked on that epoch's batch and the
    stretched ones split (:class:`Hierarchy`). The batches are those of :func:`~overlapflow.train`
    with the same ``key``.

    Returns:
        (History, final mixture): the History has ``loss`` and ``overlaps`` per epoch and
        ``components`` (epoch,), the number of components at each epoch.
    """
    key = jax.random.key(0) if key is None else key
    engine = OverlapEngine() if engine is None else engine
    mixture = start if isinstance(start, Mixture) else Mixture.gaussian(start, rnn)
    mixture = Mixture.create(mixture.weights, mixture.means, mixture.covariances, rnn, name="start")
    segments, counts, done, schedule = [], [], 0, engine.rate_schedule.init(None)
    while True:
        K = mixture.n_components
        length = min(hierarchy.every, epochs - done)
        state = TrainState(_padded(mixture), schedule)
        result = train(engine, rnn, task, None, lr, length, key=key, state=state, epoch_offset=done)
        schedule = result.state.schedule
        history = result.history[["loss", "overlaps", "visible"]]
        segments.append(history if done + length == epochs else history.isel(epoch=slice(0, -1)))
        counts.append(np.full(segments[-1].sizes["epoch"], K))
        mixture = _unpadded(result.state.engine, K)
        done += length
        if done >= epochs:
            break
        batch = task.sample(jax.random.fold_in(key, done), rnn.dt)
        mixture = hierarchy.refine(rnn, mixture, batch.inputs)
    history = xr.concat([s.drop_vars("visible") for s in segments], dim="epoch")
    history = history.assign_coords(epoch=np.arange(history.sizes["epoch"]))
    history["visible"] = segments[0].visible
    history["components"] = ("epoch", np.concatenate(counts))
    history.attrs = {
        **segments[0].attrs,
        "epochs": epochs,
        **dataclasses.asdict(hierarchy),
        "closure": "adaptive mixture",
    }
    return history, mixture
