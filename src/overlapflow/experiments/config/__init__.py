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
    # from_file = "net.pt"           # or a low_rank_rnns network file (overlapflow.interop), and
    # populations = "fit"            #   its populations fitted (the K of lowest BIC), or K, or absent

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
Paths (``output``, ``init.from_run``, ``init.from_file``) are relative to the working directory.

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

A network file (``init.from_file``, a ``low_rank_rnns`` state_dict, :mod:`overlapflow.interop`):
every engine starts from that network. ``[network]`` must be its network (rank, n_in, n_out,
phi = "tanh", readout = "after"); the file does not store alpha, which is the config's dt / tau;
N must be the file's. Its populations: ``init.populations = "fit"`` fits 1..5 Gaussian components
to the rows and keeps the K of lowest BIC (:func:`overlapflow.inspection.fit_populations`), a number
K fits K (:meth:`~overlapflow.Mixture.fit`; the fits use ``init.seed``, default the top-level
seed); absent, a ``SupportLowRankRNN`` file's own populations, or one Gaussian for a ``LowRankRNN``.
With populations the network trains with their labels and the overlap engines run the mixture
closure, as with ``[[init.populations]]``.

Every problem is reported at once as a :class:`ConfigError`, one line per problem:
``field.path: value X: what is allowed``. One pass finds them all: the types and ranges of every
field, then every check of meaning whose inputs passed their own (a field with a problem is only
left out of the checks that read it). The checks of meaning build the network (dt <= tau) and the
tasks (a task's :class:`~overlapflow.tasks.fields.TaskSettingError` is reported at that key of the
task's table, any other error at the table), and check N >= P, the engines (at
least one; each method once; the Gauss-Hermite particle count), the optimisers against the engines,
and the initial state (overlaps of a Gram matrix, a readable previous run, a twin; populations:
alone in [init], each mean and covariance against the network's vectors, the covariance symmetric
positive semi-definite, weights summing to 1, a neuron per population).

The package, one concern per module:

- :mod:`.field_types`: what the tables are made of (strict models, bounded numbers, a nonlinearity);
- :mod:`.schema`: the tables as pydantic models (types, ranges, descriptions);
- :mod:`.task_tables`: each registered task's table, made from the task's settings;
- :mod:`.experiment`: :class:`ExperimentConfig` and reading it (:func:`load_config`,
  :func:`load_config_text`, :func:`parse_config`);
- :mod:`.checks`, :mod:`.init_checks`: the checks of meaning, on a partial config (:mod:`.partial`);
- :mod:`.messages`: :class:`ConfigError` and the problem lines (pydantic's errors, the tasks' errors);
- :mod:`.toml_files`: reading TOML (its syntax errors as one line) and writing it.
"""

from .experiment import SHORTHAND, ExperimentConfig, load_config, load_config_text, parse_config
from .field_types import DTYPES, MAX_SEED, Number, Phi
from .messages import MISSING, ConfigError, pydantic_problems, toml_key
from .partial import INVALID
from .schema import (
    EnginesConfig,
    InitConfig,
    MeanEntries,
    Method,
    NetworkConfig,
    OptimizerConfig,
    ParticlesConfig,
    PhaseConfig,
    PopulationConfig,
)
from .task_tables import TASK_KINDS, TaskConfig, TaskTable, task_config_model
from .toml_files import dumps_toml, parse_toml, read_toml

__all__ = [
    "DTYPES",
    "INVALID",
    "MAX_SEED",
    "MISSING",
    "SHORTHAND",
    "TASK_KINDS",
    "ConfigError",
    "EnginesConfig",
    "ExperimentConfig",
    "InitConfig",
    "MeanEntries",
    "Method",
    "NetworkConfig",
    "Number",
    "OptimizerConfig",
    "ParticlesConfig",
    "PhaseConfig",
    "Phi",
    "PopulationConfig",
    "TaskConfig",
    "TaskTable",
    "dumps_toml",
    "load_config",
    "load_config_text",
    "parse_config",
    "parse_toml",
    "pydantic_problems",
    "read_toml",
    "task_config_model",
    "toml_key",
]
