r"""Parametric working memory (Romo et al. 1999, as set up by Dubreuil et al. 2022): compare the
frequencies of two vibrotactile stimuli separated by a variable delay."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_dt, consecutive_periods, jitted_sample, loss_kind
from ._choice import real_trials, sign_choice_accuracy, two_stimulus_windows
from .base import AbstractTask, Batch
from .context_decision import period_steps
from .fields import TaskSettingError, setting

#: The periods of the trial with the longest delay, in order (each a field of the task).
LAYOUT = ("fixation", "stimulus1", "delay_max", "stimulus2", "decision")
#: Periods that must last at least one step.
NONEMPTY = ("stimulus1", "stimulus2", "decision")


@dataclasses.dataclass(frozen=True)
class Romo(AbstractTask, kind="romo"):
    r"""The Romo task (parametric working memory), as Dubreuil et al. 2022 (Nat Neurosci) set it up
    (their ``romo.py``): report the difference of two frequencies f_1, f_2 shown one delay apart.

        fixation | stimulus1 | delay (variable) | stimulus2 | decision | (rest of T)

    Steps as the authors' ``floor(ms / deltaT)``: n_p = floor(duration_p / dt) (up to a slack of 1e-9
    steps for float ratios); each trial's delay d_b is drawn uniformly from the integers
    floor(delay_min / dt), ..., floor(delay_max / dt) (both included: their ``random.randint``). Every
    trial is T = n_fix + n_stim1 + floor(delay_max / dt) + n_stim2 + n_dec steps long (the longest
    delay's layout, :meth:`periods`); a trial with a shorter delay ends with a rest of noise, target 0
    and mask 0. At the authors' dt = 0.02 the defaults give 5, 5, 25..50, 5, 5 steps and T = 70.

    Frequency pairs (:meth:`pairs`): for each difference d in ``differences`` and every integer
    f_1 with f_lo <= f_1, f_1 + d <= f_hi ((f_lo, f_hi) = ``frequency_range``), the pair
    (f_1, f_1 + d); a trial draws one pair uniformly from the whole list (the defaults give 54 pairs,
    17 for |d| = 8, 9 for |d| = 16, 1 for |d| = 24). Frequencies enter and leave scaled by the
    range's middle f_mid = (f_lo + f_hi) / 2 and span f_span = f_hi - f_lo (22 and 24, the authors'
    ``fmiddle``, ``fspan``). With xi_t ~ N(0, 1) i.i.d. for each step,

        x_t  = noise_std xi_t + (f_1 - f_mid) / f_span [t in stimulus1] + (f_2 - f_mid) / f_span [t in stimulus2]
        y*_t = (f_1 - f_2) / f_span [t in decision],    mask_t = [t in decision]

    so the target is graded (±1/3, ±2/3, ±1 for the defaults) and its sign is the choice f_1 > f_2.
    A trial is a catch trial with probability ``catch_fraction``: noise only, y* = 0 and mask 0
    throughout (the authors' ``fraction_catch_trials``). Shapes: inputs, targets, mask (B, T, 1).
    Loss ``"masked_mse"``: the squared error averaged over the decision windows, the authors'
    ``loss_mse``. :meth:`accuracy` gives the fraction of trials whose mean decision output has the
    sign of f_1 - f_2.

    The durations are in the unit of dt: seconds for the authors' dt = 20 ms (0.02) and tau = 100 ms
    (``tau = 0.1``, dt / tau = 0.2 as their alpha). Not part of the task: their networks' own noise
    (``noise_std = 5e-3`` of their RNN in ``romo_fig1.py`` and ``train_romo_rank2.py``). They trained
    on a fixed set of 800 trials in minibatches of 32; here each batch is freshly drawn, of
    ``batch_size`` trials.

    Args (the defaults of the authors' ``romo.py``, but for batch_size):
        fixation: fixation duration (0.1).
        stimulus1, stimulus2: stimulus durations (0.1 each).
        delay_min, delay_max: shortest and longest delay (0.5, 1).
        decision: decision window duration (0.1).
        differences: the nonzero frequency differences f_2 - f_1 ((-24, -16, -8, 8, 16, 24)).
        frequency_range: lowest and highest frequency (10, 34).
        noise_std: std of the input noise at every step (0.01, their ``generate_data`` default).
        catch_fraction: probability of a catch trial (0).
        batch_size: trials per batch B (128).
    """

    fixation: float = setting(0.1, doc="fixation duration", ge=0)
    stimulus1: float = setting(0.1, doc="duration of the first stimulus", gt=0)
    delay_min: float = setting(0.5, doc="shortest delay", ge=0)
    delay_max: float = setting(1.0, doc="longest delay", ge=0)
    stimulus2: float = setting(0.1, doc="duration of the second stimulus", gt=0)
    decision: float = setting(0.1, doc="decision window duration", gt=0)
    differences: tuple[int, ...] = setting(
        (-24, -16, -8, 8, 16, 24), doc="nonzero frequency differences f2 - f1", min_length=1
    )
    frequency_range: tuple[int, int] = setting((10, 34), doc="lowest and highest frequency")
    noise_std: float = setting(0.01, doc="input noise std", ge=0)
    catch_fraction: float = setting(0.0, doc="probability of a catch trial (noise only, target 0, mask 0)", ge=0, le=1)
    batch_size: int = setting(128, doc="trials per batch B", ge=1)
    loss_kind: str = "masked_mse"

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__name__
        loss_kind(name, self.loss_kind)
        if self.delay_max < self.delay_min:
            raise TaskSettingError(name, "delay_max", self.delay_max, f"must be >= delay_min = {self.delay_min!r}")
        low, high = self.frequency_range
        if high <= low:
            raise TaskSettingError(name, "frequency_range", self.frequency_range, "the highest must exceed the lowest")
        if any(d == 0 or abs(d) > high - low for d in self.differences):
            raise TaskSettingError(
                name,
                "differences",
                self.differences,
                f"entries must be nonzero and at most {high - low} in size (the span of frequency_range)",
            )

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)
    deterministic = property(lambda self: False)

    def pairs(self) -> np.ndarray:
        """The frequency pairs (f_1, f_2), (n_pairs, 2) integers, in the authors' order (by difference,
        then f_1)."""
        low, high = self.frequency_range
        return np.array(
            [(f1, f1 + d) for d in self.differences for f1 in range(max(low - d, low), min(high, high - d) + 1)]
        )

    def periods(self, dt: float) -> dict[str, slice]:
        """Step ranges of the trial with the longest delay at dt (keys :data:`LAYOUT`; each period
        floor(duration / dt) steps); its last stop is T."""
        return consecutive_periods(self, dt, LAYOUT, NONEMPTY, period_steps, "shorter than one step")

    def sample(self, key: jax.Array, dt: float) -> Batch:
        return jitted_sample(self, key, check_dt(type(self).__name__, dt))

    def _sample(self, key: jax.Array, dt: float) -> Batch:
        periods = self.periods(dt)
        steps = {name: p.stop - p.start for name, p in periods.items()}
        T, B = periods["decision"].stop, self.batch_size
        dtype = jnp.result_type(float)
        low, high = self.frequency_range
        pairs = jnp.asarray(self.pairs(), dtype=dtype)
        key_pair, key_delay, key_catch, key_noise = jax.random.split(key, 4)
        real = real_trials(key_catch, B, self.catch_fraction, dtype)
        f = (pairs[jax.random.randint(key_pair, (B,), 0, len(pairs))] - (low + high) / 2) / (high - low)  # (B, 2)
        delay = jax.random.randint(key_delay, (B,), period_steps(self.delay_min, dt), steps["delay_max"] + 1)
        start2 = periods["stimulus1"].stop + delay  # (B,) stimulus 2 onset
        stim1, stim2, decision = two_stimulus_windows(periods, steps, start2, real, dtype)
        noise = self.noise_std * jax.random.normal(key_noise, (B, T), dtype=dtype)
        inputs = noise + f[:, :1] * stim1 + f[:, 1:] * stim2
        targets = (f[:, :1] - f[:, 1:]) * decision
        return Batch(inputs[..., None], targets[..., None], decision[..., None])

    def accuracy(self, outputs: jax.Array, batch: Batch) -> jax.Array:
        r"""Fraction of correct choices over the non-catch trials: the sign of the mean output over the
        decision window against the sign of f_1 - f_2, as the authors' ``accuracy_romo``
        (:func:`~overlapflow.tasks._choice.sign_choice_accuracy`). outputs (B, T, 1); returns a scalar."""
        return sign_choice_accuracy(outputs, batch)
