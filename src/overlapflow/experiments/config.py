r"""Experiment configs: one validated description of a run, read from TOML.

A config names the network, the training phases (each with its task, epochs, learning rate,
optimiser and target noise), the initial state, the engines to run (full network, overlap theory,
particles), N, the network's dtype, the output folder, how often to checkpoint and the seed::

    name = "fig5"
    N = 500
    seed = 0
    checkpoint_every = 1000          # epochs per segment; a checkpoint is written after each
    output = "runs/fig5"

    [network]                        # rank, n_in, n_out, phi, dt, tau
    rank = 1

    [[phases]]                       # any number of phases, run in order
    name = "A"
    epochs = 2000
    lr = 5e-3                        # overlap-scale eta (the network is trained with eta * N)
    target_noise = 0.0               # std of Gaussian noise on the targets
    optimizer = "sgd"                # or a table {kind, momentum, weight_decay, b1, b2, eps}
    [phases.task]
    kind = "exponential_filter"      # a registered task (overlapflow.tasks.TASKS): exponential_filter |
    c = 0.2                          # white_noise_filter | damped_oscillator | flipflop | decision_making | teacher

    [init]                           # random network from `seed` (default: the top-level seed) and N,
    # overlaps = {zm = 0.1, uu = 2}  # or explicit overlaps (Overlaps.from_dict; network vectors sampled),
    # from_run = "runs/previous"     # or the final state of a finished run (its output folder),
    # twin = {uu = 2.048, mu = 0.8}  # then optionally replaced by its twin (phenomena.twin.twin_network)

    # [[init.populations]]           # or populations (alone in [init]): a Gaussian mixture of the rows
    # weight = 0.3                   # the fraction of the neurons (the weights sum to 1)
    # mean = {m = 0.5, v = -1}       # by vector name (missing: 0), or an array of P numbers
    # overlaps = {zm = 0.1, uu = 2}  # the COVARIANCE by label (missing off-diagonal 0, diagonal 1),
    #                                # or covariance = [[...], ...] (P x P); one [[init.populations]] each

    [engines]
    network = true
    overlaps = "exact"               # a method, a list of methods, or false
    particles = false                # or {rule = "gauss-hermite", nodes = 8}

A task table's keys besides ``kind`` are the task's settings, declared on the task's own dataclass
(:mod:`overlapflow.tasks.fields`); its model here is made from them (:func:`task_config_model`), so a
task registered under a new kind is usable at once. ``phi`` (of the network and of the teacher) is
any name in :data:`overlapflow.nonlinearity.REGISTRY`.

A single phase may also be given at the top level (``task``, ``epochs``, ``lr``, ``optimizer``,
``target_noise``) instead of ``[[phases]]``. TOML has no null: ``false`` turns an engine off.
Paths (``output``, ``init.from_run``) are relative to the working directory.

Populations (``[[init.populations]]``, :class:`PopulationConfig`): every engine starts from their
:class:`~overlapflow.Mixture`. The network (``engines.network``) is drawn from it and trained with
its labels (:meth:`~overlapflow.Mixture.sample` with ``init.seed``; ``exact``, each population's
mean and covariance exactly the mixture's, when every population has more than P neurons, else
i.i.d. rows: no switch, since exact is always chosen where it exists); the overlap engines run the
mixture closure (methods ``exact`` and ``euler``, SGD with optional weight decay); particles start
as one cloud per population. Every History then has ``population_means`` (epoch, population, row),
``population_overlaps`` (epoch, population, row, col: the second moments C_k + mu_k mu_k^T) and
``population_weights`` (population). A later run's ``init.from_run`` continues them (the network
with its labels, the overlap engines from the Mixture, the particles with their labels).

Every problem is reported at once as a :class:`ConfigError`, one line per problem:
``field.path: value X: what is allowed``. One pass finds them all: the types and ranges of every
field, then every check of meaning whose inputs passed their own (a field with a problem is only
left out of the checks that read it). The checks of meaning build the network (dt <= tau) and the
tasks (their own ValueErrors are reported at the phase's path), and check N >= P, the engines (at
least one; each method once; the Gauss-Hermite particle count), the optimisers against the engines,
and the initial state (overlaps of a Gram matrix, a readable previous run, a twin; populations:
alone in [init], each mean and covariance against the network's vectors, the covariance symmetric
positive semi-definite, weights summing to 1, a neuron per population).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    SerializeAsAny,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_core import PydanticCustomError

from ..flow import METHODS
from ..mixture import population_sizes
from ..model import LowRankRNN
from ..nonlinearity import REGISTRY, Nonlinearity
from ..optimizers import KINDS, Optimizer
from ..particles import RULES
from ..tasks import TASKS, AbstractTask, n_steps
from ..tasks.fields import LENGTH_BOUNDS, NUMBER_BOUNDS, tuple_entries

DTYPES = ("float32", "float64")
MAX_SEED = 2**63 - 1
SHORTHAND = ("task", "epochs", "lr", "optimizer", "target_noise")


class ConfigError(ValueError):
    """An invalid experiment config. ``problems`` lists (path, value, what is allowed); the message
    has one line per problem, ``path: value X: what is allowed``."""

    def __init__(self, problems, source: str | None = None):
        self.problems = [(str(p), v, str(a)) for p, v, a in problems]
        self.source = source
        where = f" {source}" if source else ""
        count = len(self.problems)
        lines = [f"{path}: value {_show(value)}: {allowed}" for path, value, allowed in self.problems]
        super().__init__(
            f"invalid experiment config{where} ({count} problem{'s' if count != 1 else ''}):\n  " + "\n  ".join(lines)
        )


class _Missing:
    def __repr__(self):
        return "(missing)"


MISSING = _Missing()


def _show(value) -> str:
    if value is MISSING:
        return "(missing)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------- field types
def _int(low: int, high: int, description: str):
    return Annotated[int, Field(ge=low, le=high, description=description)]


def _number(description: str, **bounds):
    return Annotated[float, Field(allow_inf_nan=False, description=description, **bounds)]


def _registered_phi(name: str) -> str:
    if name not in REGISTRY:
        raise ValueError(f"unknown nonlinearity; allowed: {', '.join(REGISTRY)}")
    return name


#: A nonlinearity by name: one of :data:`overlapflow.nonlinearity.REGISTRY` when the config is read.
Phi = Annotated[str, AfterValidator(_registered_phi), Field(description="the nonlinearity")]
Number = _number("a finite number")


class _Model(BaseModel):
    # strict: no silent conversions (a string is not a number, a bool is not an integer);
    # integers are accepted where floats are expected.
    model_config = ConfigDict(extra="forbid", strict=True)


class NetworkConfig(_Model):
    """The architecture (:class:`~overlapflow.LowRankRNN`)."""

    rank: _int(1, 64, "rank R >= 1") = 1
    n_in: _int(0, 1024, "number of inputs") = 1
    n_out: _int(0, 1024, "number of outputs") = 1
    phi: Phi = "linear"
    dt: _number("Euler step > 0", gt=0) = 0.05
    tau: _number("time constant > 0", gt=0) = 1.0
    readout: Literal["after", "before"] = Field(
        "after", description="read the output after the Euler step that receives x_t, or before it"
    )

    def build(self) -> LowRankRNN:
        return LowRankRNN(self.rank, self.n_in, self.n_out, self.phi, self.dt, self.tau, self.readout)

    def describe(self) -> dict:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------------------- tasks
class TaskTable(_Model):
    """A task table: ``kind`` names a registered task (:data:`~overlapflow.tasks.TASKS`) and the other
    keys are its settings (:meth:`~overlapflow.tasks.AbstractTask.config_fields`). Each kind has its
    own subclass, made from the task class by :func:`task_config_model`."""

    kind: str

    def build(self, rnn: LowRankRNN) -> AbstractTask:
        """The task, for the student network ``rnn`` (:meth:`~overlapflow.tasks.AbstractTask.from_config`)."""
        values = {name: getattr(self, name) for name in type(self).model_fields if name != "kind"}
        return TASKS[self.kind].from_config(rnn, **values)

    def __reduce__(self):
        # the per-kind models are made at run time, so a pickle holds the table and re-validates it
        return _task_table, (self.model_dump(),)


@functools.cache
def task_config_model(task: type[AbstractTask]) -> type[TaskTable]:
    """The model of a registered task's TOML table: ``kind``, then a field per setting (its type,
    default, description and bounds; tuples are TOML arrays)."""
    fields = {}
    for s in task.config_fields():
        default = ... if s.default is dataclasses.MISSING else _toml_default(s.default)
        fields[s.name] = (Annotated[_setting_type(s.type, s.bounds), Field(description=s.doc)], default)
    doc = f"The ``{task.kind}`` task table (:class:`~{task.__module__}.{task.__qualname__}`)."
    return create_model(
        f"{task.__name__}Config", __base__=TaskTable, __doc__=doc, kind=(Literal[task.kind], ...), **fields
    )


def _setting_type(annotation, bounds):
    """The pydantic type of a setting: numbers finite and within their bounds, tuples as lists,
    ``dict[str, X]`` as a table, :class:`~overlapflow.Nonlinearity` as a registered name."""
    numbers = {k: v for k, v in bounds.items() if k in NUMBER_BOUNDS}
    if annotation is float:
        return Annotated[float, Field(allow_inf_nan=False, **numbers)]
    if annotation is int:
        return Annotated[int, Field(**numbers)]
    if annotation is Nonlinearity:
        return Phi
    if annotation in (bool, str) or typing.get_origin(annotation) is Literal:
        return annotation
    if typing.get_origin(annotation) is tuple:
        entry, length = tuple_entries(annotation)
        lengths = {k: v for k, v in bounds.items() if k in LENGTH_BOUNDS}
        if length is not None:
            lengths = {"min_length": length, "max_length": length}
        return Annotated[list[_setting_type(entry, numbers)], Field(**lengths)]
    if typing.get_origin(annotation) is dict:
        key, value = typing.get_args(annotation)
        return dict[key, _setting_type(value, numbers)]
    raise TypeError(f"a task setting of type {annotation!r} has no TOML form")


def _toml_default(value):
    """A setting's default as read from TOML: tuples as lists."""
    return [_toml_default(v) for v in value] if isinstance(value, tuple) else value


def _task_table(value):
    """Validate a task table against the model of its kind, looked up in the registry when validating."""
    if isinstance(value, TaskTable):
        return value
    if not isinstance(value, Mapping):
        raise PydanticCustomError("task_table", "must be a table")
    kind = value.get("kind")
    if not (isinstance(kind, str) and kind in TASKS):
        raise PydanticCustomError("task_kind", "unknown task kind; allowed: {kinds}", {"kinds": ", ".join(TASKS)})
    return task_config_model(TASKS[kind]).model_validate(dict(value))


#: The registered task kinds (a live view of :data:`~overlapflow.tasks.TASKS`).
TASK_KINDS = TASKS.keys()
TaskConfig = Annotated[
    SerializeAsAny[TaskTable],
    BeforeValidator(_task_table),
    Field(description="kind = a registered task, and its settings"),
]


# ---------------------------------------------------------------------------- phases
class OptimizerConfig(_Model):
    """An optimiser for every engine (:class:`~overlapflow.Optimizer`)."""

    kind: Literal[KINDS] = Field("sgd", description="the optimiser")
    momentum: _number("beta in [0, 1)", ge=0, lt=1) = 0.9
    weight_decay: _number("lambda >= 0 (overlap scale)", ge=0) = 0.0
    b1: _number("Adam's b1 in [0, 1)", ge=0, lt=1) = 0.9
    b2: _number("Adam's b2 in [0, 1)", ge=0, lt=1) = 0.999
    eps: _number("Adam's eps > 0", gt=0) = 1e-8

    def build(self) -> Optimizer:
        return Optimizer(self.kind, self.momentum, self.weight_decay, self.b1, self.b2, self.eps)


def _optimizer_shorthand(value):
    """``optimizer = "adam"`` is ``optimizer = {kind = "adam"}``."""
    return {"kind": value} if isinstance(value, str) else value


class PhaseConfig(_Model):
    """One training phase (:class:`~overlapflow.phenomena.curriculum.Phase`)."""

    name: Annotated[str, Field(min_length=1, description="a non-empty label")] | None = None
    task: TaskConfig
    epochs: _int(1, 10**9, "number of updates >= 1")
    lr: _number("the overlap-scale learning rate eta > 0", gt=0)
    optimizer: OptimizerConfig = OptimizerConfig()
    target_noise: _number("std of the target noise >= 0", ge=0) = 0.0

    _shorthand = field_validator("optimizer", mode="before")(_optimizer_shorthand)


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


class PopulationConfig(_Model):
    """One ``[[init.populations]]`` table: a population of the network, a fraction ``weight`` of its
    neurons whose rows theta are N(mean, covariance) (a component of a :class:`~overlapflow.Mixture`;
    vectors in the order of :attr:`~overlapflow.LowRankRNN.vector_names`, [M | U | V | Z]).

    ``overlaps`` names the entries of the covariance C (as ``init.overlaps`` names S): missing
    off-diagonal entries are 0, diagonal ones 1. The population's overlaps (second moment) are then
    C + mean mean^T."""

    weight: _number("the fraction of the neurons, in (0, 1]; the weights sum to 1", gt=0, le=1)
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
        from ..overlaps import parse_pair

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


class InitConfig(_Model):
    """The initial state: a random network (``seed``, top-level ``N``), explicit ``overlaps`` or the
    final state of a previous run (``from_run``), optionally replaced by its ``twin``; or
    ``[[init.populations]]`` (alone): every engine starts from that Gaussian mixture (the network
    drawn from it, labelled by population; the overlap engines run the mixture closure; particles
    one cloud per population)."""

    seed: _int(0, MAX_SEED, "seed of the random initial network (default: the top-level seed)") | None = None
    overlaps: (
        Annotated[
            dict[str, Number],
            Field(description="initial overlaps by label, e.g. {zm = 0.1, uu = 2.0}; missing: 0, diagonal 1"),
        ]
        | None
    ) = None
    from_run: Annotated[str, Field(min_length=1, description="output folder of a finished run")] | None = None
    twin: (
        Annotated[dict[str, Number], Field(description="invisible overlaps of the twin, e.g. {uu = 2.048, mu = 0.8}")]
        | None
    ) = None
    populations: (
        Annotated[
            list[PopulationConfig],
            Field(min_length=1, description="an array of [[init.populations]] tables (weight, mean, covariance)"),
        ]
        | None
    ) = None

    def build_mixture(self, rnn: LowRankRNN):
        """The :class:`~overlapflow.Mixture` of ``populations`` (None without them), in float64."""
        from ..mixture import Mixture

        if self.populations is None:
            return None
        return Mixture.create(
            [p.weight for p in self.populations],
            [p.mean_vector(rnn) for p in self.populations],
            [p.covariance_matrix(rnn) for p in self.populations],
            rnn,
            name="init.populations",
        )


class ParticlesConfig(_Model):
    """The infinite-N particle engine (:func:`~overlapflow.train_particles`)."""

    rule: Literal[RULES] = Field("gauss-hermite", description="the quadrature rule")
    nodes: _int(1, 64, "Gauss-Hermite nodes per direction (split: of the coordinates inside phi)") = 8
    right_nodes: _int(1, 64, "split: Gauss-Hermite nodes per direction of the coordinates outside phi") = 3
    level: _int(1, 12, "smolyak: the level (exact to total degree 2 level - 1)") = 4
    n: _int(4, 10**8, "particles of the qmc rule (even)") = 2**14

    @field_validator("n")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even: the qmc rule's particles come in antithetic pairs (x, -x)")
        return value


Method = Annotated[Literal[METHODS], Field(description="an overlap-space method")]


class EnginesConfig(_Model):
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


# ---------------------------------------------------------------------------- the experiment
class ExperimentConfig(_Model):
    """A whole experiment; see the module docstring. Build with :func:`parse_config` or :func:`load_config`."""

    name: Annotated[str, Field(min_length=1, description="a non-empty label")] = "experiment"
    description: Annotated[str, Field(description="free text")] = ""
    network: NetworkConfig = NetworkConfig()
    phases: (
        Annotated[list[PhaseConfig], Field(min_length=1, description="a non-empty array of [[phases]] tables")] | None
    ) = None
    task: TaskConfig | None = None
    epochs: _int(1, 10**9, "number of updates >= 1 (single-phase shorthand)") | None = None
    lr: _number("the overlap-scale learning rate eta > 0 (single-phase shorthand)", gt=0) | None = None
    optimizer: OptimizerConfig | None = None
    target_noise: _number("std of the target noise >= 0 (single-phase shorthand)", ge=0) | None = None
    init: InitConfig = InitConfig()
    engines: EnginesConfig = EnginesConfig()
    N: _int(2, 10**8, "number of neurons of the full network") = 500
    dtype: Literal[DTYPES] = Field("float32", description="the network's dtype")
    output: Annotated[str, Field(min_length=1, description="the output folder")] = "overlapflow-run"
    checkpoint_every: _int(1, 10**9, "epochs per segment (a checkpoint after each)") = 1000
    seed: _int(0, MAX_SEED, "seed of the batches (and of the initial network unless init.seed)") = 0

    _source_text: str | None = PrivateAttr(default=None)
    _source_path: str | None = PrivateAttr(default=None)
    _shorthand = field_validator("optimizer", mode="before")(_optimizer_shorthand)

    # ------------------------------------------------------------------ built objects
    def build_network(self) -> LowRankRNN:
        return self.network.build()

    def build_phases(self, rnn: LowRankRNN | None = None):
        """The phases as :class:`~overlapflow.phenomena.curriculum.Phase` values."""
        from ..phenomena.curriculum import Phase

        rnn = rnn or self.build_network()
        return [
            Phase(p.task.build(rnn), p.epochs, p.lr, p.optimizer.build(), p.target_noise, self.phase_name(j))
            for j, p in enumerate(self.phases)
        ]

    def phase_name(self, j: int) -> str:
        return self.phases[j].name or f"phase {j}"

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def resolved(self) -> dict:
        """The resolved config as plain JSON values (phases filled in, shorthand removed)."""
        return self.model_dump(mode="json", exclude=set(SHORTHAND))

    def to_json(self) -> str:
        return json.dumps(self.resolved(), indent=2, sort_keys=False)

    def to_toml(self) -> str:
        """The resolved config as TOML (reads back with :func:`load_config` to an equal config)."""
        data = self.resolved()
        engines = data["engines"]
        for key in ("overlaps", "particles"):
            if engines[key] is None:
                engines[key] = False  # TOML has no null
        return dumps_toml(data)

    def source_text(self) -> str:
        """The TOML text this config was read from, or the resolved TOML if it was built otherwise."""
        return self._source_text if self._source_text is not None else self.to_toml()

    def replace(self, **changes) -> ExperimentConfig:
        """A validated copy with top-level fields changed (values as in a TOML file)."""
        data = self.resolved()
        data.update(changes)
        return parse_config(data)

    def scaled(
        self, N: int | None = None, epoch_scale: float = 1.0, checkpoint_every: int | None = None, suffix: str = ""
    ) -> ExperimentConfig:
        """A smaller (or larger) version: N, every phase's epochs times ``epoch_scale`` (at least 1),
        the checkpoint interval; ``suffix`` is appended to the name."""
        data = self.resolved()
        for phase in data["phases"]:
            phase["epochs"] = max(1, int(round(phase["epochs"] * epoch_scale)))
        data["N"] = self.N if N is None else N
        data["checkpoint_every"] = self.checkpoint_every if checkpoint_every is None else checkpoint_every
        data["name"] = self.name + suffix
        return parse_config(data)


# ---------------------------------------------------------------------------- parsing and errors
def load_config(path) -> ExperimentConfig:
    """Read a TOML experiment config and validate it completely (raises :class:`ConfigError`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([("(file)", str(path), f"cannot be read ({error.strerror or error})")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([("(file)", str(path), f"not valid TOML: {error}")], source=str(path)) from None
    config = parse_config(data, source=str(path))
    config._source_text = text
    config._source_path = str(path)
    return config


def load_config_text(text: str, source: str | None = None) -> ExperimentConfig:
    """Like :func:`load_config`, from TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([("(text)", source or "<string>", f"not valid TOML: {error}")], source=source) from None
    config = parse_config(data, source=source)
    config._source_text = text
    return config


def parse_config(data, source: str | None = None) -> ExperimentConfig:
    """Validate a config given as a dict (as read from TOML or JSON): types and ranges, the
    single-phase shorthand, and everything building the network, tasks and initial state checks.

    Every problem is found in one pass: a field that fails its type or range check is left out of
    the checks that need it (it is :data:`INVALID` in a partial config), and every other check runs
    on the fields that passed (:func:`_partial`): e.g. the engines are checked when a phase's lr is
    wrong, and each phase's task is built whatever the other phases hold."""
    if not isinstance(data, Mapping):
        raise ConfigError([("(config)", data, "must be a table (a dict of settings)")], source=source)
    data = dict(data)
    problems: list = []
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as error:
        problems += _pydantic_problems(error, data)
        config = _partial(ExperimentConfig, data, _Errors(err["loc"] for err in error.errors()))
    config = _resolve_shorthand(config, data, problems)
    _check_semantics(config, problems)
    if problems:
        raise ConfigError(problems, source=source)
    return config


# ---------------------------------------------------------------------------- partial configs
class _Invalid:
    def __repr__(self):
        return "(invalid)"


#: The value of a field that failed its own checks, in a partial config (:func:`_partial`).
INVALID = _Invalid()


class _Errors:
    """The locations of pydantic's errors: a path is valid when no error lies inside it or on a table above it."""

    def __init__(self, locs):
        self.locs = [tuple(loc) for loc in locs]

    def valid(self, path: tuple) -> bool:
        return not any(loc[: len(path)] == path or path[: len(loc)] == loc for loc in self.locs)

    def at(self, path: tuple) -> bool:
        """An error on the value at path itself (its type or length), not only inside it."""
        return path in self.locs


def _partial(model: type[BaseModel], data: Mapping, errors: _Errors, path: tuple = ()) -> BaseModel:
    """``model`` built without validation from the fields of ``data`` that passed their checks:
    each valid field validated on its own; a table (or an array of tables) with problems inside it
    built the same way; any other field with problems, or a required one missing, :data:`INVALID`."""
    values = {}
    for name, info in model.model_fields.items():
        if name not in data:
            if info.is_required():
                values[name] = INVALID
            continue
        value, where = data[name], (*path, name)
        if errors.valid(where):
            values[name] = _validated(model, name, value)
            continue
        inner, _ = _unwrap(info.annotation)
        item = _unwrap(typing.get_args(inner)[0])[0] if typing.get_origin(inner) is list else None
        if _is_table(item) and isinstance(value, list) and not errors.at(where):
            values[name] = [_partial_table(item, v, errors, (*where, j)) for j, v in enumerate(value)]
        else:
            values[name] = _partial_table(inner, value, errors, where)
    return model.model_construct(**values)


def _is_table(model) -> bool:
    """A config model whose fields are checked one by one (a task table is checked as a whole)."""
    return isinstance(model, type) and issubclass(model, BaseModel) and not issubclass(model, TaskTable)


def _partial_table(model, value, errors: _Errors, path: tuple):
    """A table's value: validated if it passed, partial if its problems lie inside it, else INVALID."""
    if not (_is_table(model) and isinstance(value, Mapping)):
        return INVALID
    if errors.valid(path):
        try:
            return model.model_validate(value)
        except ValidationError:  # pragma: no cover - it passed as a part of the whole config
            return INVALID
    return INVALID if errors.at(path) else _partial(model, value, errors, path)


def _validated(model: type[BaseModel], name: str, value):
    """One field of ``model`` validated alone (its validators included)."""
    instance = model.model_construct()
    try:
        model.__pydantic_validator__.validate_assignment(instance, name, value)
    except ValidationError:  # pragma: no cover - it passed as a part of the whole config
        return INVALID
    return getattr(instance, name)


def _ok(value) -> bool:
    """Whether a value of a (possibly partial) config passed its checks, every field inside it too."""
    if value is INVALID:
        return False
    if isinstance(value, BaseModel):
        return all(_ok(getattr(value, name, INVALID)) for name in type(value).model_fields)
    if isinstance(value, list):
        return all(_ok(v) for v in value)
    return True


def _given(data: Mapping, key: str) -> bool:
    return data.get(key) is not None


def _resolve_shorthand(config: ExperimentConfig, data, problems) -> ExperimentConfig:
    given = [key for key in SHORTHAND if _given(data, key)]
    if _given(data, "phases"):
        for key in given:
            problems.append(
                (
                    key,
                    data.get(key),
                    "give either [[phases]] or a single phase at the top level (task, epochs, lr, ...), not both",
                )
            )
        return config
    if not given:
        problems.append(
            (
                "phases",
                MISSING,
                "required: an array of [[phases]] tables, or a single phase at the top level (task, epochs, lr)",
            )
        )
        return config
    for key in ("task", "epochs", "lr"):
        if not _given(data, key):
            what = ExperimentConfig.model_fields[key].description or "required"
            problems.append((key, MISSING, f"required for a single phase at the top level ({what})"))
    values = {
        "task": config.task if _given(data, "task") else INVALID,
        "epochs": config.epochs if _given(data, "epochs") else INVALID,
        "lr": config.lr if _given(data, "lr") else INVALID,
        "optimizer": OptimizerConfig() if config.optimizer is None else config.optimizer,
        "target_noise": 0.0 if config.target_noise is None else config.target_noise,
    }
    # a phase of the parts that passed (its other checks still run), or the validated phase
    phase = PhaseConfig(**values) if _ok(list(values.values())) else PhaseConfig.model_construct(**values)
    return config.model_copy(update={"phases": [phase], **{key: None for key in SHORTHAND}})


_TASK_ERROR = re.compile(r"^\w+\.(\w+)(?:\[[^\]]*\])?(?: = (.*?))?: (.*)$", re.S)


def _task_problem(path: str, task_config, error: Exception):
    """A task class's ValueError "Name.field = value: allowed" (or "Name.field: allowed") as a
    problem at path.field."""
    match = _TASK_ERROR.match(str(error))
    if match and match.group(1) in type(task_config).model_fields:
        field = match.group(1)
        return (f"{path}.{field}", getattr(task_config, field), match.group(3))
    return (path, task_config.model_dump(), str(error))


def _check_semantics(config: ExperimentConfig, problems) -> None:
    """Everything past types and ranges, each check run when the fields it reads passed their own:
    build the network and the tasks; N >= P; the engines; engines vs optimisers; the initial state."""
    rnn = _check_network(config, problems)
    engines = config.engines if _ok(config.engines) else None
    if engines is not None:
        _check_engines(engines, problems)
    methods = (engines.overlaps or []) if engines is not None else None
    mixture = config.init is not INVALID and getattr(config.init, "populations", None) is not None
    if mixture and methods and not set(methods) <= {"exact", "euler"}:
        problems.append(
            (
                "engines.overlaps",
                methods,
                "with init.populations the overlap engine runs the mixture closure, whose methods are 'exact' "
                "and 'euler' only",
            )
        )
    phases = config.phases if isinstance(config.phases, list) else []
    for j, phase in enumerate(phases):
        if phase is INVALID:
            continue
        path = f"phases.{j}"
        if rnn is not None and _ok(phase.task):
            _check_task(f"{path}.task", phase.task, rnn, problems)
        optimizer = phase.optimizer
        kind = optimizer.kind if optimizer is not INVALID and _ok(optimizer.kind) else None
        if kind == "adam" and methods is not None and (methods or engines.particles is not None):
            problems.append(
                (
                    f"{path}.optimizer.kind",
                    kind,
                    "'adam' runs on the full network only (it does not close in overlap space); "
                    "set engines.overlaps = false and leave particles off",
                )
            )
        if kind in ("momentum", "nesterov") and mixture and methods:
            problems.append(
                (
                    f"{path}.optimizer.kind",
                    kind,
                    "the mixture closure (init.populations) runs SGD only (weight decay allowed): use kind 'sgd', "
                    "or set engines.overlaps = false",
                )
            )
        elif kind in ("momentum", "nesterov") and methods is not None and any(m != "exact" for m in methods):
            problems.append(
                (
                    f"{path}.optimizer.kind",
                    kind,
                    f"momentum in overlap space needs method 'exact' (engines.overlaps = {methods})",
                )
            )
    if methods is not None and "visible-only" in methods and phases:
        epochs = phases[0].epochs if phases[0] is not INVALID else INVALID
        every = config.checkpoint_every
        if len(phases) > 1 or (_ok(epochs) and _ok(every) and every < epochs):
            problems.append(
                (
                    "engines.overlaps",
                    methods,
                    "'visible-only' (naive descent on the visible overlaps) leaves the set of Gram matrices, so it "
                    "cannot continue from a checkpoint: use a single phase and checkpoint_every >= its epochs",
                )
            )
    if config.init is not INVALID:
        _check_init(config, rnn, engines, problems)


def _check_network(config: ExperimentConfig, problems) -> LowRankRNN | None:
    """The network (None if it is not valid), dt <= tau, and N >= P."""
    network = config.network
    if not _ok(network):
        return None
    if network.dt > network.tau:
        problems.append(
            (
                "network.dt",
                network.dt,
                f"must be <= tau = {network.tau!r}: the Euler step alpha = dt / tau = {network.dt / network.tau:.3g} "
                "must be at most 1 (beyond it the leak overshoots, beyond 2 it diverges)",
            )
        )
    try:
        rnn = network.build()
    except Exception as error:  # noqa: BLE001 - any failure is a problem of this table
        problems.append(("network", network.model_dump(), str(error)))
        return None
    if _ok(config.N) and config.N < rnn.n_vectors:
        problems.append(("N", config.N, f"must be >= P = {rnn.n_vectors} (the number of vectors of this network)"))
    return rnn


def _check_engines(engines: EnginesConfig, problems) -> None:
    if not engines.names():
        problems.append(
            (
                "engines",
                engines.model_dump(),
                'select at least one engine (network = true, overlaps = "exact", or particles = {...})',
            )
        )
    methods = engines.overlaps or []
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        problems.append(
            ("engines.overlaps", methods, f"repeats {repeated}: each method runs once (the runs would be identical)")
        )


def _check_task(path: str, table: TaskTable, rnn: LowRankRNN, problems) -> None:
    """Build the task for rnn; its durations at rnn.dt; its n_in, n_out against the network's."""
    try:
        task = table.build(rnn)
    except Exception as error:  # noqa: BLE001
        problems.append(_task_problem(path, table, error))
        return
    try:
        _check_task_steps(task, rnn.dt)
    except Exception as error:  # noqa: BLE001
        problems.append(_task_problem(path, table, error))
    if task.n_in != rnn.n_in or task.n_out != rnn.n_out:
        problems.append(
            (
                path,
                table.model_dump(),
                f"has n_in = {task.n_in}, n_out = {task.n_out}; the network has n_in = {rnn.n_in}, "
                f"n_out = {rnn.n_out}; they must match",
            )
        )


def _check_task_steps(task: AbstractTask, dt: float) -> None:
    """The task's own checks of its durations at step dt (no sampling, no compilation), and those
    of the task giving its inputs (the teacher's ``input_task``)."""
    method = next((getattr(task, m) for m in ("periods", "steps") if hasattr(task, m)), None)
    t_max = getattr(task, "t_max", None)
    if method is not None:
        method(dt)
    elif t_max is not None and n_steps(t_max, dt) < 1:
        raise ValueError(
            f"{type(task).__name__}.t_max = {t_max!r}: gives T = {n_steps(t_max, dt)} steps at dt = {dt!r}; need T >= 1"
        )
    inner = getattr(task, "input_task", None)
    if isinstance(inner, AbstractTask):
        _check_task_steps(inner, dt)


def _check_init(config: ExperimentConfig, rnn: LowRankRNN | None, engines: EnginesConfig | None, problems) -> None:
    """The initial state; each check reads only fields that passed (``rnn``, ``engines``: None if not)."""
    from ..overlaps import Overlaps

    init = config.init  # possibly partial: each check reads the fields that passed
    given = {name: getattr(init, name) for name in InitConfig.model_fields}
    given = {name: value for name, value in given.items() if value is not None and _ok(value)}
    if "overlaps" in given and "from_run" in given:
        problems.append(("init", given, "give at most one of overlaps and from_run"))
    if "seed" in given and "from_run" in given:
        problems.append(
            ("init.seed", init.seed, "not used with from_run (the run continues from a saved state); remove it")
        )
    if init.populations is not None:
        _check_populations(config, rnn, engines, problems)
        return
    # the initial overlaps, where known before running (None: from a run, or not valid)
    known = rnn is not None and init.from_run is None and _ok(init.overlaps)
    S = np.eye(rnn.n_vectors) if known else None
    if "overlaps" in given and rnn is not None:
        try:
            S = np.asarray(Overlaps.from_dict(rnn, init.overlaps).matrix)
        except Exception as error:  # noqa: BLE001
            S = None
            problems.append(
                (
                    "init.overlaps",
                    init.overlaps,
                    f"{error} (labels are pairs of {list(rnn.vector_names)}; "
                    "the matrix must be positive semi-definite)",
                )
            )
    if "from_run" in given:
        _check_from_run(config, engines, problems)
    if "twin" in given and S is not None:
        try:
            from ..phenomena.twin import twin_overlaps
        except ImportError:  # pragma: no cover - the twin module ships with overlapflow
            problems.append(("init.twin", init.twin, "needs overlapflow.phenomena.twin, which is not installed"))
            return
        try:
            S = np.asarray(twin_overlaps(rnn, S, init.twin).matrix)
        except Exception as error:  # noqa: BLE001
            S = None
            problems.append(("init.twin", init.twin, str(error)))
    if S is not None and engines is not None:
        _check_particle_count(engines, [S], problems)


def _check_populations(
    config: ExperimentConfig, rnn: LowRankRNN | None, engines: EnginesConfig | None, problems
) -> None:
    """``[[init.populations]]``: alone in init; each population's mean and covariance against the
    network; the weights summing to 1; a neuron per population; the particles of their clouds."""
    init = config.init
    others = [name for name in ("overlaps", "from_run", "twin") if getattr(init, name, None) is not None]
    if others:
        problems.append(
            (
                "init",
                sorted([*others, "populations"]),
                "give init.populations alone (every engine starts from their mixture): remove init."
                + " and init.".join(others),
            )
        )
    populations = init.populations if isinstance(init.populations, list) else []
    covariances = []
    for k, population in enumerate(populations):
        if population is INVALID or rnn is None:
            continue
        path = f"init.populations.{k}"
        if _ok(population.mean):
            try:
                population.mean_vector(rnn)
            except ValueError as error:
                problems.append((f"{path}.mean", population.mean, str(error)))
        given = [name for name in ("covariance", "overlaps") if getattr(population, name, None) is not None]
        if len(given) != 1:
            problems.append(
                (
                    path,
                    {name: getattr(population, name) for name in given} or MISSING,
                    "give one of covariance (a P x P array) and overlaps (the covariance's entries by label)",
                )
            )
        elif _ok(getattr(population, given[0])):
            try:
                covariances.append(population.covariance_matrix(rnn))
            except ValueError as error:
                problems.append((f"{path}.{given[0]}", getattr(population, given[0]), str(error)))
    weights = [p.weight for p in populations if p is not INVALID and _ok(p.weight)]
    if populations and len(weights) == len(populations):
        if abs(sum(weights) - 1.0) > 1e-9:
            problems.append(
                (
                    "init.populations",
                    weights,
                    f"the weights sum to {sum(weights):.12g}; they must sum to 1 (the fractions of the neurons)",
                )
            )
        elif engines is not None and engines.network and _ok(config.N) and min(population_sizes(weights, config.N)) < 1:
            problems.append(
                (
                    "N",
                    config.N,
                    f"gives populations of {population_sizes(weights, config.N)} neurons (round(weight N)); "
                    "each needs at least one: raise N or the smallest weight",
                )
            )
    if engines is not None and covariances and len(covariances) == len(populations):
        _check_particle_count(engines, covariances, problems)


def _check_from_run(config: ExperimentConfig, engines: EnginesConfig | None, problems) -> None:
    from ..mixture import Mixture
    from .run_files import RunError, read_final_state

    from_run = config.init.from_run
    try:
        previous = read_final_state(from_run)
    except Exception as error:  # noqa: BLE001 - RunError, OSError, a path that cannot exist, an unreadable file
        problems.append(
            ("init.from_run", from_run, str(error) if isinstance(error, RunError) else f"cannot be read ({error})")
        )
        return
    if _ok(config.network) and previous["network"] != config.network.describe():
        problems.append(
            (
                "init.from_run",
                from_run,
                f"that run's network {previous['network']} differs from this one {config.network.describe()}",
            )
        )
    mixtures = any(isinstance(state, Mixture) for state in previous["states"].values())
    if config.init.twin is not None and (previous["populations"] or mixtures):
        problems.append(
            (
                "init.twin",
                config.init.twin,
                f"the run in {from_run} has populations; a twin is defined for one Gaussian only: remove init.twin",
            )
        )
    theta = previous["states"].get("network")
    if (
        theta is not None
        and engines is not None
        and "network" in engines.names()
        and _ok(config.N)
        and theta.shape[0] != config.N
    ):
        problems.append(
            (
                "N",
                config.N,
                f"must equal the previous run's N = {theta.shape[0]} (the network continues from {from_run})",
            )
        )


def _check_particle_count(engines: EnginesConfig, covariances: list[np.ndarray], problems) -> None:
    """The Gauss-Hermite rule's nodes^d particles per cloud (d = the rank of the initial overlaps, or
    of each population's covariance: a cloud per population) within the limit."""
    from ..particles import MAX_PARTICLES

    particles = engines.particles
    if particles is None or particles.rule != "gauss-hermite":
        return
    dims = []
    for S in covariances:
        eigenvalues = np.linalg.eigvalsh((S + S.T) / 2)
        dims.append(int(np.sum(eigenvalues > 1e-12 * max(eigenvalues.max(), 1e-300))))
    total = sum(particles.nodes**d for d in dims)
    if total > MAX_PARTICLES:
        if len(dims) == 1:
            count = f"nodes^d = {particles.nodes}^{dims[0]} = {total} particles for the {dims[0]} directions"
            count += " of the initial overlaps"
        else:
            count = (
                f"{' + '.join(f'{particles.nodes}^{d}' for d in dims)} = {total} particles for the directions of "
                f"the {len(dims)} populations' covariances"
            )
        problems.append(
            (
                "engines.particles.nodes",
                particles.nodes,
                f"gives {count} (limit {MAX_PARTICLES}): use fewer nodes or rule = 'qmc'",
            )
        )


# ---------------------------------------------------------------------------- pydantic errors -> problems
def _unwrap(annotation, description=None):
    """Strip Annotated / Optional: (type, the innermost description found in Field metadata, else ``description``)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            args = typing.get_args(annotation)
            for meta in args[1:]:
                description = getattr(meta, "description", None) or description
            annotation = args[0]
        elif origin in (Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        else:
            return annotation, description


def _field_at(loc, data):
    """Walk an error location through the config models and the data they were given.

    Returns (display path, the model holding the last key or None, the description of the last
    field). A task table is walked with the model of the kind its data names."""
    current, description, node = ExperimentConfig, None, data
    path, parent = [], None
    for item in loc:
        path.append(str(item))
        if current is TaskTable:
            kind = node.get("kind") if isinstance(node, Mapping) else None
            current = task_config_model(TASKS[kind]) if isinstance(kind, str) and kind in TASKS else None
        node = _entry(node, item)
        if isinstance(current, type) and issubclass(current, BaseModel):
            parent = current
            info = current.model_fields.get(item) if isinstance(item, str) else None
            if info is None:
                current, description = None, None
                continue
            current, description = _unwrap(info.annotation, info.description)
        elif typing.get_origin(current) in (list, dict):
            current, description = _unwrap(typing.get_args(current)[-1], description)
            parent = None
        else:
            current = None
    return ".".join(path) or "(config)", parent, description


def _entry(node, key):
    """node[key] for a table or an array, else None."""
    if isinstance(node, Mapping):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node):
        return node[key]
    return None


def _allowed_keys(model) -> str:
    return ", ".join(model.model_fields) if model is not None else "?"


def _pydantic_problems(error: ValidationError, data) -> list:
    problems = []
    for err in error.errors(include_url=False):
        kind, loc = err["type"], err["loc"]
        path, parent, description = _field_at(loc, data)
        if kind == "extra_forbidden":
            problems.append((path, err.get("input"), f"unknown key; allowed keys here: {_allowed_keys(parent)}"))
        elif kind == "missing":
            problems.append((path, MISSING, f"required ({description})" if description else "required"))
        elif kind == "task_kind":
            problems.append((f"{path}.kind", err["input"].get("kind", MISSING), err["msg"]))
        elif kind in ("task_table", "model_attributes_type"):
            problems.append(
                (path, err.get("input", MISSING), f"must be a table{f' ({description})' if description else ''}")
            )
        else:
            message = err["msg"]
            message = re.sub(r"^Input should be ", "must be ", message)
            message = re.sub(r"^Value error, ", "", message)
            if description and description not in message:
                message = f"{message} ({description})"
            problems.append((path, err.get("input", MISSING), message))
    return problems


# ---------------------------------------------------------------------------- TOML writing
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as TOML")


def _is_table_array(value) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, Mapping) for v in value)


def dumps_toml(data: Mapping) -> str:
    """Write a dict of plain values as TOML (tables, arrays of tables, inline values; None skipped)."""
    lines: list[str] = []
    _write_table(lines, [], data)
    return "\n".join(lines).strip() + "\n"


def _write_table(lines, prefix, table) -> None:
    for key, value in table.items():
        if value is None or isinstance(value, Mapping) or _is_table_array(value):
            continue
        lines.append(f"{toml_key(key)} = {_toml_value(value)}")
    for key, value in table.items():
        name = ".".join(toml_key(k) for k in [*prefix, key])
        if isinstance(value, Mapping):
            lines += ["", f"[{name}]"]
            _write_table(lines, [*prefix, key], value)
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{name}]]"]
                _write_table(lines, [*prefix, key], item)
