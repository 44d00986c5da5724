"""The whole experiment: :class:`ExperimentConfig`, and reading one (:func:`load_config`,
:func:`load_config_text`, :func:`parse_config`).

Reading finds every problem in one pass: the types and ranges of every field (:mod:`.schema`,
pydantic's errors as lines by :mod:`.messages`), the single-phase shorthand resolved into
``[[phases]]``, then every check of meaning whose inputs passed their own (:mod:`.checks`, on a
partial config: :mod:`.partial`); the problems are raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator

from ...model import LowRankRNN
from .checks import check_semantics
from .field_types import DTYPES, MAX_SEED, StrictModel, bounded_int, finite_number
from .messages import MISSING, ConfigError, pydantic_problems
from .partial import INVALID, Errors, ok, partial
from .schema import EnginesConfig, InitConfig, NetworkConfig, OptimizerConfig, PhaseConfig, optimizer_shorthand
from .task_tables import TaskConfig
from .toml_files import TomlFile, dumps_toml, parse_toml, read_toml

#: The keys of a single phase given at the top level instead of ``[[phases]]``.
SHORTHAND = ("task", "epochs", "lr", "optimizer", "target_noise")


# ---------------------------------------------------------------------------- the experiment
class ExperimentConfig(StrictModel):
    """A whole experiment (see :mod:`overlapflow.experiments.config`); build it with :func:`parse_config`
    or :func:`load_config`."""

    name: Annotated[str, Field(min_length=1, description="a non-empty label")] = "experiment"
    description: Annotated[str, Field(description="free text")] = ""
    network: NetworkConfig = NetworkConfig()
    phases: (
        Annotated[list[PhaseConfig], Field(min_length=1, description="a non-empty array of [[phases]] tables")] | None
    ) = None
    task: TaskConfig | None = None
    epochs: bounded_int(1, 10**9, "number of updates >= 1 (single-phase shorthand)") | None = None
    lr: finite_number("the overlap-scale learning rate eta > 0 (single-phase shorthand)", gt=0) | None = None
    optimizer: OptimizerConfig | None = None
    target_noise: finite_number("std of the target noise >= 0 (single-phase shorthand)", ge=0) | None = None
    init: InitConfig = InitConfig()
    engines: EnginesConfig = EnginesConfig()
    N: bounded_int(2, 10**8, "number of neurons of the full network") = 500
    dtype: Literal[DTYPES] = Field("float32", description="the network's dtype")
    output: Annotated[str, Field(min_length=1, description="the output folder")] = "overlapflow-run"
    checkpoint_every: bounded_int(1, 10**9, "epochs per segment (a checkpoint after each)") = 1000
    seed: bounded_int(0, MAX_SEED, "seed of the batches (and of the initial network unless init.seed)") = 0

    _source_text: str | None = PrivateAttr(default=None)
    _source_path: str | None = PrivateAttr(default=None)
    _shorthand = field_validator("optimizer", mode="before")(optimizer_shorthand)

    # ------------------------------------------------------------------ built objects
    def build_network(self) -> LowRankRNN:
        return self.network.build()

    def build_phases(self, rnn: LowRankRNN | None = None):
        """The phases as :class:`~overlapflow.phenomena.curriculum.Phase` values."""
        from ...phenomena.curriculum import Phase

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


# ---------------------------------------------------------------------------- reading
def load_config(path, toml: TomlFile | None = None) -> ExperimentConfig:
    """Read a TOML experiment config and validate it completely (raises :class:`ConfigError`);
    ``toml``: the file as :func:`read_toml` already read it (it is not read again)."""
    text, data = read_toml(path) if toml is None else toml
    config = parse_config(data, source=str(path))
    config._source_text = text
    config._source_path = str(path)
    return config


def load_config_text(text: str, source: str | None = None) -> ExperimentConfig:
    """Like :func:`load_config`, from TOML text."""
    config = parse_config(parse_toml(text, source), source=source)
    config._source_text = text
    return config


def parse_config(data, source: str | None = None) -> ExperimentConfig:
    """Validate a config given as a dict (as read from TOML or JSON): types and ranges, the
    single-phase shorthand, and everything building the network, tasks and initial state checks.

    Every problem is found in one pass: a field that fails its type or range check is left out of
    the checks that need it (it is :data:`~.partial.INVALID` in a partial config), and every other
    check runs on the fields that passed (:func:`~.partial.partial`): e.g. the engines are checked
    when a phase's lr is wrong, and each phase's task is built whatever the other phases hold."""
    if not isinstance(data, Mapping):
        raise ConfigError([("(config)", data, "must be a table (a dict of settings)")], source=source)
    data = dict(data)
    problems: list = []
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as error:
        problems += pydantic_problems(error, data, ExperimentConfig)
        config = partial(ExperimentConfig, data, Errors(err["loc"] for err in error.errors()))
    config = _resolve_shorthand(config, data, problems)
    check_semantics(config, problems)
    if problems:
        raise ConfigError(problems, source=source)
    return config


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
    phase = PhaseConfig(**values) if ok(list(values.values())) else PhaseConfig.model_construct(**values)
    return config.model_copy(update={"phases": [phase], **{key: None for key in SHORTHAND}})
