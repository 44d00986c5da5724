r"""What an imported network is: its size, overlaps, populations, and how well the theories run it.

:func:`inspect_network` (behind ``overlapflow inspect MODEL``) reads a ``low_rank_rnns`` file
(:mod:`overlapflow.interop`) or takes an :class:`~overlapflow.interop.ImportedNetwork`, and reports

- the architecture: N, rank R, n_in, n_out, alpha = dt / tau;
- the overlaps S = theta^T theta / N (P, P), split into the loss-visible and the invisible entries
  (:func:`~overlapflow.overlaps.visible_names`), and the visible ones in function and gauge
  coordinates (:func:`~overlapflow.gauge.function_coordinates`, :func:`~overlapflow.gauge.gauge_coordinates`);
- the populations: the file's own (a ``SupportLowRankRNN`` with several supports), K components
  fitted with :meth:`~overlapflow.Mixture.fit` when K is given, or else the K in 1..K_max that
  minimises the Bayesian information criterion of the fits (:func:`fit_populations`);
- on a task batch (when a task is given): how far the one-Gaussian theory N(0, S) and the mixture
  theory of the populations are from the network's own outputs (RMS over every trial, step and
  output), and the task's accuracy of each where the task has ``accuracy``.

:func:`rows_figure` draws the rows theta_i, one colour per population.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int
from matplotlib.figure import Figure

from .gauge import function_coordinates, gauge_coordinates
from .interop import ImportedNetwork, load_low_rank_rnns
from .meanfield import meanfield_forward
from .mixture import Mixture, fit_labels
from .model import LowRankRNN
from .network import network_forward
from .overlaps import Overlaps, invisible_names, visible_names
from .precision import float64
from .tasks import AbstractTask

#: Largest number of components :func:`fit_populations` tries by default.
K_MAX = 5


@dataclasses.dataclass(frozen=True, eq=False)
class PopulationFit:
    """The Gaussian-mixture fit of a network's rows that the BIC selects.

    Attributes:
        K: the selected number of components (argmin of ``bic``, 1-based).
        bic: (K_max,) the BIC of the fit with 1..K_max components (lower is better).
        mixture: the empirical law of the selected fit's populations (:meth:`~overlapflow.Mixture.fit`).
        labels: (N,) the population of each row.
    """

    K: int
    bic: tuple[float, ...]
    mixture: Mixture
    labels: Int[np.ndarray, " N"]


def fit_populations(
    rnn: LowRankRNN, theta: Float[np.ndarray, "N P"], K_max: int = K_MAX, seed: int = 0
) -> PopulationFit:
    """Fit 1..K_max Gaussian components to the rows of theta (N, P) and keep the K of lowest BIC.

    Each fit is scikit-learn's ``GaussianMixture`` with the settings of :meth:`~overlapflow.Mixture.fit`
    (full covariances, 3 initialisations, ``random_state=seed``); its BIC is
    -2 log L + p log N with p = K - 1 + K P + K P (P + 1) / 2 free parameters. The selected fit's
    populations are that fit's labels (:func:`~overlapflow.mixture.fit_labels`, as
    :meth:`~overlapflow.Mixture.fit`), and the mixture their empirical law: its overlaps are exactly
    the network's.

    Raises:
        ValueError: K_max not an integer >= 1, or N <= K_max (a component needs rows).
        overlapflow.MissingExtra: scikit-learn is not installed (``pip install 'overlapflow[decode]'``).
    """
    if isinstance(K_max, bool) or not isinstance(K_max, int) or K_max < 1:
        raise ValueError(f"K_max = {K_max!r}: must be an integer >= 1 (the most components tried)")
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape[0] <= K_max:
        raise ValueError(f"K_max = {K_max}: the network has N = {theta.shape[0]} rows; K_max must be < N")
    fits = [fit_labels(theta, K, seed) for K in range(1, K_max + 1)]
    bic = tuple(b for _, b in fits)
    K = int(np.argmin(bic)) + 1
    labels = np.asarray(fits[K - 1][0], dtype=np.int64)
    return PopulationFit(K, bic, Mixture.from_params(rnn, theta, labels), labels)


@dataclasses.dataclass(frozen=True, eq=False)
class TheoryGap:
    """The theories against the network on one batch of a task (outputs y (B, T, n_out)).

    Attributes:
        task: the task's one-line description.
        rms_network: sqrt(mean y_network^2), the scale of the outputs.
        rms_gaussian: sqrt(mean (y_gaussian - y_network)^2), the one-Gaussian theory N(0, S).
        rms_mixture: the same for the mixture theory of the populations.
        accuracy: {"network", "gaussian", "mixture"} -> the task's accuracy of each (empty if the
            task has no ``accuracy``).
    """

    task: str
    rms_network: float
    rms_gaussian: float
    rms_mixture: float
    accuracy: dict[str, float]


@dataclasses.dataclass(frozen=True, eq=False)
class InspectionReport:
    """What :func:`inspect_network` found (numbers as Python floats; arrays as numpy).

    Attributes:
        network: the network inspected (``.rnn``, ``.theta`` (N, P), ``.labels``, ``.source``).
        overlaps: S (P, P) of the network.
        visible, invisible: overlap label -> value, the loss-visible and the invisible entries.
        function, gauge: coordinate label -> value (:mod:`overlapflow.gauge`).
        populations: ``"file"`` (the file's supports), ``"fit"`` (K given) or ``"bic"`` (K selected).
        labels: (N,) the population of each row.
        mixture: the populations' law (:meth:`~overlapflow.Mixture.from_params` of ``labels``).
        bic: (K_max,) the BIC of 1..K_max components where the BIC selected K, else None.
        theory: the theories against the network on a task batch, or None without a task.
    """

    network: ImportedNetwork
    overlaps: Overlaps
    visible: dict[str, float]
    invisible: dict[str, float]
    function: dict[str, float]
    gauge: dict[str, float]
    populations: str
    labels: Int[np.ndarray, " N"]
    mixture: Mixture
    bic: tuple[float, ...] | None
    theory: TheoryGap | None

    @property
    def N(self) -> int:
        return self.network.N

    @property
    def K(self) -> int:
        return self.mixture.n_components

    @property
    def sizes(self) -> list[int]:
        """Neurons per population."""
        return np.bincount(self.labels, minlength=self.K).tolist()


@float64
def inspect_network(
    network: str | Path | ImportedNetwork,
    task: AbstractTask | None = None,
    K: int | None = None,
    K_max: int = K_MAX,
    alpha: float = 0.2,
    tau: float = 1.0,
    seed: int = 0,
) -> InspectionReport:
    """Inspect a ``low_rank_rnns`` network (see the module docstring for what is reported).

    Args:
        network: a ``.pt`` file (read with :func:`~overlapflow.interop.load_low_rank_rnns` with
            ``alpha`` and ``tau``) or an already imported network.
        task: a task for the theory check (its durations in the unit of dt = alpha tau), or None.
        K: fit this many populations (:meth:`~overlapflow.Mixture.fit`); None: the file's own
            populations if it has several, else the K of lowest BIC in 1..K_max.
        seed: seed of the fits and of the task batch.

    Raises:
        overlapflow.torchfile.TorchFileError, overlapflow.interop.NetworkFileError: a bad file (one line).
        overlapflow.tasks.TaskSettingError: the task does not fit the network's dt.
        ValueError: K, K_max or the task's n_in / n_out do not fit the network (one line).
    """
    net = network if isinstance(network, ImportedNetwork) else load_low_rank_rnns(network, alpha=alpha, tau=tau)
    rnn, theta = net.rnn, np.asarray(net.theta, dtype=np.float64)
    S = Overlaps.from_params(rnn, theta)
    values = S.as_dict()
    function, function_names = function_coordinates(rnn, S)
    gauge, gauge_names = gauge_coordinates(rnn, S)
    bic = None
    if K is not None:
        if isinstance(K, bool) or not isinstance(K, int) or not 1 <= K < net.N:
            raise ValueError(f"K = {K!r}: must be an integer in [1, N) (populations to fit)")
        mixture, labels = Mixture.fit(rnn, theta, K, seed)
        kind = "fit"
    elif np.unique(net.labels).size > 1:
        mixture, labels, kind = net.mixture(), net.labels, "file"
    else:
        fit = fit_populations(rnn, theta, K_max, seed)
        mixture, labels, bic, kind = fit.mixture, fit.labels, fit.bic, "bic"
    return InspectionReport(
        network=net,
        overlaps=S,
        visible={name: values[name] for name in visible_names(rnn)},
        invisible={name: values[name] for name in invisible_names(rnn)},
        function=dict(zip(function_names, np.asarray(function).tolist(), strict=True)),
        gauge=dict(zip(gauge_names, np.asarray(gauge).tolist(), strict=True)),
        populations=kind,
        labels=np.asarray(labels, dtype=np.int64),
        mixture=mixture,
        bic=bic,
        theory=None if task is None else theory_gap(rnn, theta, S, mixture, task, seed),
    )


@float64
def theory_gap(
    rnn: LowRankRNN, theta: Float[np.ndarray, "N P"], S: Overlaps, mixture: Mixture, task: AbstractTask, seed: int = 0
) -> TheoryGap:
    """Outputs of the network (float64), of ``meanfield_forward(rnn, S)`` and of
    ``meanfield_forward(rnn, mixture)`` on ``task.sample(key(seed), rnn.dt)``, compared."""
    if task.n_in != rnn.n_in or task.n_out != rnn.n_out:
        raise ValueError(
            f"task: n_in = {task.n_in}, n_out = {task.n_out}; the network has n_in = {rnn.n_in}, "
            f"n_out = {rnn.n_out}; they must match"
        )
    batch = task.sample(jax.random.key(seed), rnn.dt)
    outputs = {
        "network": network_forward(rnn, jnp.asarray(theta), batch.inputs),
        "gaussian": meanfield_forward(rnn, S.matrix, batch.inputs),
        "mixture": meanfield_forward(rnn, mixture, batch.inputs),
    }
    y = np.asarray(outputs["network"])

    def rms(x) -> float:
        return float(np.sqrt(np.mean(np.square(x))))

    score = getattr(task, "accuracy", None)
    accuracy = {name: float(score(out, batch)) for name, out in outputs.items()} if callable(score) else {}
    return TheoryGap(
        task=task.describe(),
        rms_network=rms(y),
        rms_gaussian=rms(np.asarray(outputs["gaussian"]) - y),
        rms_mixture=rms(np.asarray(outputs["mixture"]) - y),
        accuracy=accuracy,
    )


def row_pairs(rnn: LowRankRNN) -> list[tuple[int, int]]:
    """Column pairs (i, j) of theta that :func:`rows_figure` draws: (u_r, v_r) for every rank r
    (the lab's (m, n)), (m_j, v_1) for every input j, (u_1, z_k) for every output k."""
    sl = rnn.slices
    U, V, M, Z = (list(range(sl[b].start, sl[b].stop)) for b in "UVMZ")
    return [*zip(U, V, strict=True), *((m, V[0]) for m in M), *((U[0], z) for z in Z)]


def rows_figure(report: InspectionReport, max_points: int = 4000, seed: int = 0) -> Figure:
    """The rows theta_i (one point per neuron, one colour per population) in the planes of
    :func:`row_pairs`; at most ``max_points`` neurons drawn (a random subset, the same in every panel)."""
    rnn, theta, labels = report.network.rnn, np.asarray(report.network.theta), report.labels
    names = rnn.vector_names
    pairs = row_pairs(rnn)
    shown = np.random.default_rng(seed).permutation(theta.shape[0])[:max_points]
    cols = min(4, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    fig = Figure(figsize=(3.0 * cols, 2.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (i, j) in zip(axes, pairs, strict=False):
        for k in range(report.K):
            mine = shown[labels[shown] == k]
            ax.scatter(theta[mine, i], theta[mine, j], s=4, alpha=0.5, color=f"C{k}", label=f"population {k}")
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
    for ax in axes[len(pairs) :]:
        ax.set_visible(False)
    if report.K > 1:
        axes[0].legend(fontsize="small", markerscale=3)
    fig.suptitle(f"{Path(report.network.source).name}: N = {report.N}, K = {report.K} ({report.populations})")
    return fig


__all__ = [
    "K_MAX",
    "InspectionReport",
    "PopulationFit",
    "TheoryGap",
    "fit_populations",
    "inspect_network",
    "rows_figure",
]
