r"""Teacher task: reproduce the outputs of a reduced (mean-field) network with fixed overlaps."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ..meanfield import meanfield_forward
from ..model import LowRankRNN
from ..nonlinearity import Nonlinearity
from ..overlaps import Overlaps, parse_pair
from ..precision import float64
from ._checks import check_dt, jitted_sample, loss_kind
from .base import AbstractTask, Batch
from .fields import Setting, TaskSettingError, is_number, setting
from .flipflop import FlipFlop

#: The teacher of the A/B -> C experiment (task C; rank-1 erf network, one input, one output):
#: (zm, zu, vm, vu, mu, mm, uu). zz, vv and zv are not given (they do not change its output).
PAPER_TEACHER_OVERLAPS = types.MappingProxyType(
    {"zm": 0.5, "zu": 2.3, "vm": 2.0, "vu": 1.5, "um": 1.6, "mm": 1.8, "uu": 2.2}
)


def teacher_overlaps(rnn: LowRankRNN, overlaps, task: str = "Teacher") -> Overlaps:
    r"""The full, validated overlap matrix of a teacher from labels or an :class:`Overlaps`.

    From labels (a mapping or (label, value) pairs; labels read in either order, "um" = "mu"):
    missing entries are 0, except missing diagonal entries of B = [M | U], which are 1. If no
    label lies inside A = [V | Z] (e.g. zz, vv, zv: they never change the teacher's output), that
    block is completed as S[A, A] = S[A, B] S[B, B]^+ S[B, A] + I, which makes S a valid Gram
    matrix whenever S[B, B] is positive definite; otherwise missing A entries are 0 (diagonal 1).
    The result must be symmetric positive semi-definite; a problem raises a
    :class:`~overlapflow.tasks.fields.TaskSettingError` of the field ``overlaps`` of ``task``.
    """
    names = rnn.vector_names
    if isinstance(overlaps, Overlaps):
        if overlaps.names != names:
            raise TaskSettingError(
                task,
                "overlaps",
                overlaps,
                f"overlaps of vectors {list(overlaps.names)}; the teacher network has {list(names)}",
                show_value=False,
            )
        S = np.asarray(overlaps.matrix, dtype=float)
    else:
        try:
            items = list(overlaps.items()) if isinstance(overlaps, Mapping) else [tuple(p) for p in overlaps]
            if not all(len(p) == 2 for p in items):
                raise TypeError
        except TypeError:
            raise TaskSettingError(
                task,
                "overlaps",
                overlaps,
                f"must be a dict of overlap labels to numbers (e.g. {dict(PAPER_TEACHER_OVERLAPS)}), "
                "(label, value) pairs, or an overlapflow.Overlaps",
            ) from None
        sl = rnn.slices
        in_A = set(range(rnn.n_vectors)[sl["A"]])
        S = np.zeros((rnn.n_vectors, rnn.n_vectors))
        S[sl["B"], sl["B"]] = np.eye(rnn.n_left)
        given = set()
        for label, value in items:
            try:
                i, j = parse_pair(names, label)
            except ValueError as error:
                raise TaskSettingError(task, "overlaps", overlaps, str(error), show_value=False) from None
            if not is_number(value):
                raise TaskSettingError(task, "overlaps", value, "must be a finite number", entry=f"[{label!r}]")
            S[i, j] = S[j, i] = value
            given.add((max(i, j), min(i, j)))
        if any(i in in_A and j in in_A for i, j in given):
            for i in in_A:
                if (i, i) not in given:
                    S[i, i] = 1.0
        else:
            S_AB, S_BB = S[sl["A"], sl["B"]], S[sl["B"], sl["B"]]
            S[sl["A"], sl["A"]] = S_AB @ np.linalg.pinv(S_BB) @ S_AB.T + np.eye(rnn.n_vectors - rnn.n_left)
    try:
        return Overlaps.from_matrix(rnn, S)
    except ValueError as error:
        raise TaskSettingError(task, "overlaps", overlaps, str(error), show_value=False) from None


@dataclasses.dataclass(frozen=True)
class Teacher(AbstractTask, kind="teacher"):
    r"""Teacher task (task C of the A/B -> C experiment, paper figs. 4d-f, 9, 10).

    The target is the output of the reduced (mean-field) network of ``rnn`` with fixed overlaps
    S* (see :func:`~overlapflow.meanfield_forward`), driven by the same inputs as the student:

        x    = noise_std xi + pulse_scale p,    xi ~ N(0, 1) i.i.d. (B, T, n_in)
        y*   = meanfield_forward(rnn at step dt, S*, x)
        mask = 1 everywhere

    with p the inputs of ``input_task`` (default: the pulses of
    ``FlipFlop(batch_size=batch_size, t_max=t_max, input_amp=1)``), sampled from an independent
    key. The teacher runs at the sampling step dt (``rnn.dt`` is replaced by dt; tau is kept).

    ``overlaps`` is normalised on construction to the full matrix S* as (label, value) pairs in
    canonical order (hashable; see :func:`teacher_overlaps` for how missing entries are filled);
    ``overlap_matrix`` gives it as an :class:`~overlapflow.Overlaps`.

    Shapes: inputs (B, T, n_in), targets and mask (B, T, n_out). Loss ``"mse"``.

    Args (paper defaults):
        overlaps: labels to values, (label, value) pairs, or an :class:`~overlapflow.Overlaps`
            (the paper's, :data:`PAPER_TEACHER_OVERLAPS`).
        rnn: the teacher architecture (default ``LowRankRNN(rank=1, phi="erf")``).
        noise_std: std of the Gaussian input noise (1.5).
        pulse_scale: factor on the input task's pulses (2.0).
        input_task: task whose inputs supply the pulses; its n_in, batch size and t_max must match.
        batch_size: trials per batch B (128).
        t_max: trial length (20.0).
    """

    overlaps: tuple[tuple[str, float], ...] = tuple(PAPER_TEACHER_OVERLAPS.items())
    rnn: LowRankRNN | None = None
    noise_std: float = setting(1.5, doc="input noise std", ge=0)
    pulse_scale: float = setting(2.0, doc="factor on the flip-flop pulses")
    input_task: AbstractTask | None = None
    batch_size: int = setting(128, doc="trials per batch B", ge=1)
    t_max: float = setting(20.0, doc="trial length", gt=0)
    loss_kind: str = "mse"

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__name__
        rnn = LowRankRNN(rank=1, phi="erf") if self.rnn is None else self.rnn
        if not isinstance(rnn, LowRankRNN):
            raise TaskSettingError(name, "rnn", rnn, "must be an overlapflow.LowRankRNN (or None for rank 1, erf)")
        if rnn.n_in < 1 or rnn.n_out < 1:
            raise TaskSettingError(
                name, "rnn", rnn, f"n_in = {rnn.n_in}, n_out = {rnn.n_out}; a teacher needs both >= 1", show_value=False
            )
        object.__setattr__(self, "rnn", rnn)
        loss_kind(name, self.loss_kind)
        S = teacher_overlaps(rnn, self.overlaps, name)
        object.__setattr__(self, "overlaps", tuple(S.as_dict().items()))

        task = self.input_task
        if task is None:
            first_pulse = FlipFlop.first_pulse  # the dataclass default
            if not self.t_max > first_pulse:
                raise TaskSettingError(
                    name,
                    "t_max",
                    self.t_max,
                    f"must be > {first_pulse!r}, the first pulse of the default input task (a FlipFlop); "
                    "give input_task for shorter trials",
                )
            task = FlipFlop(n_bits=rnn.n_in, batch_size=self.batch_size, t_max=self.t_max, input_amp=1.0)
        if not isinstance(task, AbstractTask):
            raise TaskSettingError(name, "input_task", task, "must be an overlapflow task (or None for a FlipFlop)")
        if task.n_in != rnn.n_in:
            raise TaskSettingError(
                name,
                "input_task",
                task,
                f"n_in = {task.n_in}; must equal the teacher's rnn.n_in = {rnn.n_in}",
                show_value=False,
            )
        for field in ("batch_size", "t_max"):
            other = getattr(task, field, None)
            if other is not None and other != getattr(self, field):
                raise TaskSettingError(
                    name,
                    "input_task",
                    other,
                    f"must equal {name}.{field} = {getattr(self, field)!r}",
                    entry=f".{field}",
                )
        object.__setattr__(self, "input_task", task)

    @classmethod
    def config_fields(cls) -> tuple[Setting, ...]:
        """In TOML the teacher network is given by its rank and phi (see :meth:`from_config`) and the
        overlaps as a table of labels; then the settings (noise_std, pulse_scale, batch_size, t_max)."""
        return (
            Setting(
                "overlaps",
                dict[str, float],
                dict(PAPER_TEACHER_OVERLAPS),
                "the teacher's overlaps by label, e.g. {zm = 0.5, uu = 2.2}",
            ),
            Setting("rank", int, 1, "the teacher's rank", {"ge": 1, "le": 64}),
            Setting("phi", Nonlinearity, "erf", "the teacher's nonlinearity"),
            *super().config_fields(),
        )

    @classmethod
    def from_config(cls, rnn: LowRankRNN, overlaps: dict, rank: int, phi: str, **settings) -> Teacher:
        """The teacher network LowRankRNN(rank, n_in, n_out, phi, dt, tau) takes the student's n_in, n_out, dt, tau."""
        teacher = LowRankRNN(rank, rnn.n_in, rnn.n_out, phi, rnn.dt, rnn.tau)
        return cls(tuple(overlaps.items()), teacher, **settings)

    @classmethod
    def paper(cls, **kwargs) -> Teacher:
        """The paper's teacher: :data:`PAPER_TEACHER_OVERLAPS`, rank-1 erf network (other fields as given)."""
        return cls(dict(PAPER_TEACHER_OVERLAPS), **kwargs)

    n_in = property(lambda self: self.rnn.n_in)
    n_out = property(lambda self: self.rnn.n_out)
    deterministic = property(lambda self: False)

    def describe(self) -> str:
        """One line with the overlaps by label, the architecture's settings and the input task."""
        overlaps = ", ".join(f"{label}={value:.6g}" for label, value in self.overlaps)
        return (
            f"Teacher(overlaps=({overlaps}), rnn={self.rnn.describe()}, noise_std={self.noise_std!r}, "
            f"pulse_scale={self.pulse_scale!r}, input_task={self.input_task.describe()}, "
            f"batch_size={self.batch_size!r}, t_max={self.t_max!r})"
        )

    @property
    def overlap_matrix(self) -> Overlaps:
        """The teacher's overlaps S* as an :class:`~overlapflow.Overlaps`."""
        return teacher_overlaps(self.rnn, self.overlaps)

    @float64
    def sample(self, key: jax.Array, dt: float) -> Batch:
        return jitted_sample(self, key, check_dt(type(self).__name__, dt))

    def _sample(self, key: jax.Array, dt: float) -> Batch:
        key_noise, key_task = jax.random.split(key)
        pulses = self.input_task.sample(key_task, dt).inputs
        if pulses.shape[0] != self.batch_size:
            raise ValueError(
                f"{type(self).__name__}.input_task gives batches of {pulses.shape[0]} trials; "
                f"batch_size = {self.batch_size}"
            )
        dtype = jnp.result_type(float)
        inputs = self.noise_std * jax.random.normal(key_noise, pulses.shape, dtype=dtype) + self.pulse_scale * pulses
        rnn = self.rnn if self.rnn.dt == dt else dataclasses.replace(self.rnn, dt=dt)
        targets = meanfield_forward(rnn, jnp.asarray(self.overlap_matrix.matrix), inputs)
        return Batch(inputs, targets, jnp.ones_like(targets))
