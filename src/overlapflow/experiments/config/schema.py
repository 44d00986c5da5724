"""The config's tables as pydantic models: every field's type, range and description.

What is checked here needs no other field: types (strict: a string is not a number, a bool is not an
integer), ranges, registered names (a nonlinearity, a task kind: :mod:`.task_tables`) and the shape of
each table. The checks that need the network or the tasks built are in :mod:`.checks`; the whole
experiment (:class:`~overlapflow.experiments.config.experiment.ExperimentConfig`) is in :mod:`.experiment`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, PlainSerializer, PlainValidator, TypeAdapter, field_validator

from ...flow import METHODS
from ...model import LowRankRNN
from ...optimizers import KINDS, Optimizer
from ...particles import RULES
from .field_types import MAX_SEED, Number, Phi, StrictModel, bounded_int, finite_number
from .task_tables import TaskConfig


class NetworkConfig(StrictModel):
    """The architecture (:class:`~overlapflow.LowRankRNN`)."""

    rank: bounded_int(1, 64, "rank R >= 1") = 1
    n_in: bounded_int(0, 1024, "number of inputs") = 1
    n_out: bounded_int(0, 1024, "number of outputs") = 1
    phi: Phi = "linear"
    dt: finite_number("Euler step > 0", gt=0) = 0.05
    tau: finite_number("time constant > 0", gt=0) = 1.0
    readout: Literal["after", "before"] = Field(
        "after", description="read the output after the Euler step that receives x_t, or before it"
    )

    def build(self) -> LowRankRNN:
        return LowRankRNN(self.rank, self.n_in, self.n_out, self.phi, self.dt, self.tau, self.readout)

    def describe(self) -> dict:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------------------- phases
class OptimizerConfig(StrictModel):
    """An optimiser for every engine (:class:`~overlapflow.Optimizer`)."""

    kind: Literal[KINDS] = Field("sgd", description="the optimiser")
    momentum: finite_number("beta in [0, 1)", ge=0, lt=1) = 0.9
    weight_decay: finite_number("lambda >= 0 (overlap scale)", ge=0) = 0.0
    b1: finite_number("Adam's b1 in [0, 1)", ge=0, lt=1) = 0.9
    b2: finite_number("Adam's b2 in [0, 1)", ge=0, lt=1) = 0.999
    eps: finite_number("Adam's eps > 0", gt=0) = 1e-8

    def build(self) -> Optimizer:
        return Optimizer(self.kind, self.momentum, self.weight_decay, self.b1, self.b2, self.eps)


def optimizer_shorthand(value):
    """``optimizer = "adam"`` is ``optimizer = {kind = "adam"}``."""
    return {"kind": value} if isinstance(value, str) else value


class PhaseConfig(StrictModel):
    """One training phase (:class:`~overlapflow.phenomena.curriculum.Phase`)."""

    name: Annotated[str, Field(min_length=1, description="a non-empty label")] | None = None
    task: TaskConfig
    epochs: bounded_int(1, 10**9, "number of updates >= 1")
    lr: finite_number("the overlap-scale learning rate eta > 0", gt=0)
    optimizer: OptimizerConfig = OptimizerConfig()
    target_noise: finite_number("std of the target noise >= 0", ge=0) = 0.0

    _shorthand = field_validator("optimizer", mode="before")(optimizer_shorthand)


# ---------------------------------------------------------------------------- initial state, engines
def _vector_entries(value):
    """A population's mean as given: a table {vector name: number} or an array of numbers (checked
    against the network's vectors with the other checks of meaning)."""
    entries = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else None
    if entries is None or (isinstance(value, Mapping) and not all(isinstance(k, str) for k in value)):
        raise ValueError("must be a table or an array")
    for entry in entries:
        if isinstance(entry, bool) or not isinstance(entry, (int, float)) or not math.isfinite(entry):
            raise ValueError(f"entry {entry!r} is not a finite number")
    if isinstance(value, Mapping):
        return {name: float(entry) for name, entry in value.items()}
    return [float(entry) for entry in value]


MeanEntries = Annotated[
    dict[str, float] | list[float],
    PlainValidator(_vector_entries),
    Field(description="the mean: a table {vector name = number}, missing entries 0, or an array of P numbers"),
]


class PopulationConfig(StrictModel):
    """One ``[[init.populations]]`` table: a population of the network, a fraction ``weight`` of its
    neurons whose rows theta are N(mean, covariance) (a component of a :class:`~overlapflow.Mixture`;
    vectors in the order of :attr:`~overlapflow.LowRankRNN.vector_names`, [M | U | V | Z]).

    ``overlaps`` names the entries of the covariance C (as ``init.overlaps`` names S): missing
    off-diagonal entries are 0, diagonal ones 1. The population's overlaps (second moment) are then
    C + mean mean^T."""

    weight: finite_number("the fraction of the neurons, in (0, 1]; the weights sum to 1", gt=0, le=1)
    mean: MeanEntries = {}
    covariance: (
        Annotated[list[list[Number]], Field(description="the covariance: a P x P array (rows in vector order)")] | None
    ) = None
    overlaps: (
        Annotated[
            dict[str, Number],
            Field(
                description="the covariance by label, e.g. {zm = 0.1, uu = 2}: missing off-diagonal 0, diagonal 1 "
                "(the covariance C, not the second moment C + mean mean^T)"
            ),
        ]
        | None
    ) = None

    def mean_vector(self, rnn: LowRankRNN) -> np.ndarray:
        """The mean (P,) in vector order; ValueError (what is allowed) if it does not fit ``rnn``."""
        names = list(rnn.vector_names)
        if isinstance(self.mean, list):
            if len(self.mean) != len(names):
                raise ValueError(f"has {len(self.mean)} entries; must have P = {len(names)}, one per vector {names}")
            return np.asarray(self.mean, dtype=np.float64)
        unknown = [name for name in self.mean if name not in names]
        if unknown:
            raise ValueError(f"unknown vectors {unknown}; the vectors are {names} (missing entries are 0)")
        return np.array([self.mean.get(name, 0.0) for name in names], dtype=np.float64)

    def covariance_matrix(self, rnn: LowRankRNN) -> np.ndarray:
        """The covariance (P, P); ValueError (what is allowed) if it does not fit ``rnn`` or is not
        symmetric positive semi-definite (the tolerance of :func:`~overlapflow.overlaps.check_gram`)."""
        from ...overlaps import parse_pair

        names, P = list(rnn.vector_names), rnn.n_vectors
        if self.covariance is not None:
            rows = self.covariance
            if len(rows) != P or any(len(row) != P for row in rows):
                lengths = [len(row) for row in rows]
                raise ValueError(f"rows of lengths {lengths}; must be P x P = {P} x {P} (vectors {names})")
            C = np.asarray(rows, dtype=np.float64)
        else:
            C = np.eye(P)
            for label, value in self.overlaps.items():
                i, j = parse_pair(rnn.vector_names, label)
                C[i, j] = C[j, i] = value
        scale = max(1.0, float(np.max(np.abs(C))))
        asymmetry = float(np.max(np.abs(C - C.T)))
        if asymmetry > 1e-8 * scale:
            raise ValueError(f"not symmetric (largest |C - C^T| = {asymmetry:.3g}); a covariance is symmetric")
        low = float(np.linalg.eigvalsh((C + C.T) / 2)[0])
        if low < -1e-8 * scale * P:
            raise ValueError(f"not positive semi-definite (smallest eigenvalue {low:.6g}): no Gaussian has it")
        return C


#: The most populations ``init.populations`` may fit to a network file.
MAX_FITTED_POPULATIONS = 64
_POPULATION_TABLES = TypeAdapter(Annotated[list[PopulationConfig], Field(min_length=1)])


def _populations(value):
    """``init.populations``: ``"fit"``, a number K of populations to fit (both with ``from_file``), or
    the array of ``[[init.populations]]`` tables (each validated at its own path)."""
    if (
        value is None
        or value == "fit"
        or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_FITTED_POPULATIONS)
    ):
        return value
    if not isinstance(value, list):
        raise ValueError(f"must be 'fit', a number K in [1, {MAX_FITTED_POPULATIONS}], or an array of tables")
    return _POPULATION_TABLES.validate_python(value)


def _dump_populations(value):
    return [p.model_dump() for p in value] if isinstance(value, list) else value


class InitConfig(StrictModel):
    """The initial state: a random network (``seed``, top-level ``N``), explicit ``overlaps`` or the
    final state of a previous run (``from_run``), optionally replaced by its ``twin``; or
    ``[[init.populations]]`` (alone): every engine starts from that Gaussian mixture (the network
    drawn from it, labelled by population; the overlap engines run the mixture closure; particles
    one cloud per population); or a ``low_rank_rnns`` network file (``from_file``): every engine
    starts from that network, its populations the file's (a ``SupportLowRankRNN``), fitted
    (``populations = "fit"``: the K of lowest BIC; ``populations = K``), or none (one Gaussian)."""

    seed: bounded_int(0, MAX_SEED, "seed of the random initial network (default: the top-level seed)") | None = None
    overlaps: (
        Annotated[
            dict[str, Number],
            Field(description="initial overlaps by label, e.g. {zm = 0.1, uu = 2.0}; missing: 0, diagonal 1"),
        ]
        | None
    ) = None
    from_run: Annotated[str, Field(min_length=1, description="output folder of a finished run")] | None = None
    from_file: (
        Annotated[str, Field(min_length=1, description="a low_rank_rnns network file (.pt, a saved state_dict)")] | None
    ) = None
    twin: (
        Annotated[dict[str, Number], Field(description="invisible overlaps of the twin, e.g. {uu = 2.048, mu = 0.8}")]
        | None
    ) = None
    populations: Annotated[
        list[PopulationConfig] | Literal["fit"] | int | None,
        PlainValidator(_populations),
        PlainSerializer(_dump_populations),
        Field(
            description="an array of [[init.populations]] tables (weight, mean, covariance), or with from_file "
            "'fit' or a number K of populations to fit"
        ),
    ] = None

    @property
    def population_tables(self) -> list[PopulationConfig] | None:
        """The ``[[init.populations]]`` tables, or None (none given, or populations to fit)."""
        return self.populations if isinstance(self.populations, list) else None

    def build_mixture(self, rnn: LowRankRNN):
        """The :class:`~overlapflow.Mixture` of the ``[[init.populations]]`` tables (None without them), in float64."""
        from ...mixture import Mixture

        tables = self.population_tables
        if tables is None:
            return None
        return Mixture.create(
            [p.weight for p in tables],
            [p.mean_vector(rnn) for p in tables],
            [p.covariance_matrix(rnn) for p in tables],
            rnn,
            name="init.populations",
        )


class ParticlesConfig(StrictModel):
    """The infinite-N particle engine (:class:`~overlapflow.ParticleEngine`)."""

    rule: Literal[RULES] = Field("gauss-hermite", description="the quadrature rule")
    nodes: bounded_int(1, 64, "Gauss-Hermite nodes per direction (split: of the coordinates inside phi)") = 8
    right_nodes: bounded_int(1, 64, "split: Gauss-Hermite nodes per direction of the coordinates outside phi") = 3
    level: bounded_int(1, 12, "smolyak: the level (exact to total degree 2 level - 1)") = 4
    n: bounded_int(4, 10**8, "particles of the qmc rule (even)") = 2**14

    @field_validator("n")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even: the qmc rule's particles come in antithetic pairs (x, -x)")
        return value


Method = Annotated[Literal[METHODS], Field(description="an overlap-space method")]


class EnginesConfig(StrictModel):
    """Which engines run: the full network, overlap space (one or more methods), particles."""

    network: Annotated[bool, Field(description="true or false")] = True
    overlaps: (
        Annotated[
            list[Method], Field(min_length=1, description=f"a method of {list(METHODS)}, a list of them, or false")
        ]
        | None
    ) = ["exact"]
    particles: ParticlesConfig | None = None

    @field_validator("overlaps", mode="before")
    @classmethod
    def _methods(cls, value):
        if value is False:
            return None
        if value is True:
            return ["exact"]
        return [value] if isinstance(value, str) else value

    @field_validator("particles", mode="before")
    @classmethod
    def _particles(cls, value):
        if value is False:
            return None
        return {} if value is True else value

    def names(self) -> list[str]:
        """Engine keys in run order: "network", "overlaps" (first method), "overlaps-<method>", "particles"."""
        names = ["network"] if self.network else []
        for k, method in enumerate(self.overlaps or []):
            names.append("overlaps" if k == 0 else f"overlaps-{method}")
        return names + (["particles"] if self.particles is not None else [])

    def method_of(self, name: str) -> str:
        return self.overlaps[0] if name == "overlaps" else name.removeprefix("overlaps-")
