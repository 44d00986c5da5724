"""Checks of the initial state (``[init]``) against the network and the engines.

Explicit overlaps must be a Gram matrix; a previous run (``from_run``) must be readable, with this
network and N; a network file (``from_file``) must be readable, with this network (rank, n_in,
n_out, phi tanh, readout "after"; its alpha is the config's dt / tau) and N, and alone in [init]
but for ``populations = "fit"`` or K (which need it) and the seed of the fit; a twin must exist;
populations (``[[init.populations]]``) must be alone in [init],
each mean and covariance fitting the network's vectors, the covariance symmetric positive
semi-definite, the weights summing to 1, with a neuron per population; and the Gauss-Hermite
particles of the initial clouds must stay within the limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...mixture import population_sizes
from ...model import LowRankRNN
from .messages import MISSING
from .partial import INVALID, ok
from .schema import EnginesConfig, InitConfig

if TYPE_CHECKING:
    from ...interop import ImportedNetwork
    from .experiment import ExperimentConfig


def check_init(config: ExperimentConfig, rnn: LowRankRNN | None, engines: EnginesConfig | None, problems) -> None:
    """The initial state; each check reads only fields that passed (``rnn``, ``engines``: None if not)."""
    from ...overlaps import Overlaps

    init = config.init  # possibly partial: each check reads the fields that passed
    given = {name: getattr(init, name) for name in InitConfig.model_fields}
    given = {name: value for name, value in given.items() if value is not None and ok(value)}
    if "overlaps" in given and "from_run" in given:
        problems.append(("init", given, "give at most one of overlaps and from_run"))
    beside_file = sorted({"overlaps", "from_run", "twin"} & set(given))
    if "from_file" in given and beside_file:
        problems.append(
            (
                "init",
                given,
                "give init.from_file without "
                + ", ".join(f"init.{name}" for name in beside_file)
                + " (every engine starts from the file's network)",
            )
        )
    if "seed" in given and "from_run" in given:
        problems.append(
            ("init.seed", init.seed, "not used with from_run (the run continues from a saved state); remove it")
        )
    # [[init.populations]] tables (not populations to fit, nor a value that failed beside from_file)
    tables = init.populations is not None and not fits_populations(init.populations)
    if tables and not (init.populations is INVALID and "from_file" in given):
        _check_populations(config, rnn, engines, problems)
        return
    if "from_file" in given:
        _check_from_file(config, rnn, engines, problems)
        return
    if init.populations is not None:
        problems.append(
            (
                "init.populations",
                init.populations,
                "'fit' or a number K fits populations to the network of init.from_file: give init.from_file, "
                "or the populations as [[init.populations]] tables",
            )
        )
    # the initial overlaps, where known before running (None: from a run, a file, or not valid)
    known = rnn is not None and init.from_run is None and init.from_file is None and ok(init.overlaps)
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
            from ...phenomena.twin import twin_overlaps
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
    others = [name for name in ("overlaps", "from_run", "from_file", "twin") if getattr(init, name, None) is not None]
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
        if ok(population.mean):
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
        elif ok(getattr(population, given[0])):
            try:
                covariances.append(population.covariance_matrix(rnn))
            except ValueError as error:
                problems.append((f"{path}.{given[0]}", getattr(population, given[0]), str(error)))
    weights = [p.weight for p in populations if p is not INVALID and ok(p.weight)]
    if populations and len(weights) == len(populations):
        if abs(sum(weights) - 1.0) > 1e-9:
            problems.append(
                (
                    "init.populations",
                    weights,
                    f"the weights sum to {sum(weights):.12g}; they must sum to 1 (the fractions of the neurons)",
                )
            )
        elif engines is not None and engines.network and ok(config.N) and min(population_sizes(weights, config.N)) < 1:
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
    from ...mixture import Mixture
    from ...run_folder import RunError, RunFolder

    from_run = config.init.from_run
    try:
        previous = RunFolder(from_run).final_states()
    except Exception as error:  # noqa: BLE001 - RunError, OSError, a path that cannot exist, an unreadable file
        problems.append(
            ("init.from_run", from_run, str(error) if isinstance(error, RunError) else f"cannot be read ({error})")
        )
        return
    if ok(config.network) and previous["network"] != config.network.describe():
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
        and ok(config.N)
        and theta.shape[0] != config.N
    ):
        problems.append(
            (
                "N",
                config.N,
                f"must equal the previous run's N = {theta.shape[0]} (the network continues from {from_run})",
            )
        )


def fits_populations(populations) -> bool:
    """Whether ``init.populations`` asks for populations fitted to the file's network ("fit" or K)."""
    return populations == "fit" or (isinstance(populations, int) and not isinstance(populations, bool))


def read_network_file(path: str, rnn: LowRankRNN | None) -> tuple[ImportedNetwork | None, str | None]:
    """The network of ``init.from_file`` read with the config's alpha = dt / tau and tau, or None and
    what is wrong with the file (one line, the path not repeated)."""
    from ...interop import load_low_rank_rnns

    try:
        scale = {} if rnn is None else {"alpha": rnn.alpha, "tau": rnn.tau}
        return load_low_rank_rnns(path, **scale), None
    except Exception as error:  # noqa: BLE001 - TorchFileError, NetworkFileError, OSError: one line each
        return None, str(error).removeprefix(f"{path}: ")


def file_network_differences(imported: ImportedNetwork, rnn: LowRankRNN) -> list[str]:
    """What of ``[network]`` differs from the file's network: rank, n_in, n_out, phi, readout."""
    mine = {"rank": rnn.rank, "n_in": rnn.n_in, "n_out": rnn.n_out, "phi": rnn.nonlinearity.name}
    mine["readout"] = rnn.readout
    theirs = imported.rnn
    file = {"rank": theirs.rank, "n_in": theirs.n_in, "n_out": theirs.n_out, "phi": theirs.nonlinearity.name}
    file["readout"] = theirs.readout
    return [f"{key} = {mine[key]!r} (the file's: {file[key]!r})" for key in mine if mine[key] != file[key]]


def starts_from_mixture(config: ExperimentConfig, rnn: LowRankRNN | None) -> bool:
    """Whether the engines start from populations (the overlap engine then runs the mixture closure):
    ``init.populations`` (tables, or populations to fit), or a file's ``SupportLowRankRNN`` network."""
    init = config.init
    if init is INVALID:
        return False
    if getattr(init, "populations", None) is not None:
        return True
    path = getattr(init, "from_file", None)
    if path is None or not ok(path):
        return False
    imported, _ = read_network_file(path, rnn)
    return imported is not None and imported.model == "SupportLowRankRNN"


def _check_from_file(config: ExperimentConfig, rnn: LowRankRNN | None, engines: EnginesConfig | None, problems):
    """``init.from_file``: readable; its network that of ``[network]``; N the file's; K < N; the particles."""
    from ...overlaps import Overlaps

    init = config.init
    path = init.from_file
    imported, problem = read_network_file(path, rnn)
    if imported is None:
        problems.append(("init.from_file", path, problem))
        return
    differences = [] if rnn is None else file_network_differences(imported, rnn)
    if differences:
        problems.append(
            (
                "init.from_file",
                path,
                f"its network differs from [network] in {', '.join(differences)}; set those in [network] "
                "(alpha = dt / tau is the config's: the file does not store it)",
            )
        )
        return
    if engines is not None and "network" in engines.names() and ok(config.N) and config.N != imported.N:
        problems.append(("N", config.N, f"must equal the file's N = {imported.N} (the network continues from {path})"))
    K = init.populations
    if fits_populations(K) and K != "fit" and K >= imported.N:
        problems.append(("init.populations", K, f"must be < N = {imported.N} (the file's neurons)"))
    if engines is not None and init.populations is None and rnn is not None:
        if imported.model == "SupportLowRankRNN":
            covariances = [np.asarray(C) for C in imported.mixture().covariances]
        else:
            covariances = [np.asarray(Overlaps.from_params(rnn, imported.theta).matrix)]
        _check_particle_count(engines, covariances, problems)


def _check_particle_count(engines: EnginesConfig, covariances: list[np.ndarray], problems) -> None:
    """The Gauss-Hermite rule's nodes^d particles per cloud (d = the rank of the initial overlaps, or
    of each population's covariance: a cloud per population) within the limit."""
    from ...particles import MAX_PARTICLES

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
