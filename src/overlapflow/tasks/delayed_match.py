r"""Delayed match-to-sample (as set up by Dubreuil et al. 2022): two stimuli, each A or B, separated by a
variable delay; report whether they match."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ._checks import check_dt, consecutive_periods, jitted_sample, loss_kind
from ._choice import real_trials, sign_choice_accuracy, two_stimulus_windows
from .base import AbstractTask, Batch
from .context_decision import STEP_SLACK, period_steps
from .fields import TaskSettingError, setting

#: The periods of the trial with the longest delay, in order (each a field of the task).
LAYOUT = ("fixation", "stimulus1", "delay_max", "stimulus2", "decision")
#: Periods that must last at least one step.
NONEMPTY = ("stimulus1", "stimulus2", "decision")


@dataclasses.dataclass(frozen=True)
class DelayedMatch(AbstractTask, kind="delayed_match"):
    r"""Delayed match-to-sample, the task of Dubreuil et al. 2022 (Nat Neurosci; their ``dms.py``).

    Each trial shows stimulus 1, a delay, stimulus 2, then asks for the decision:

        fixation | stimulus1 | delay (variable) | stimulus2 | decision | (rest of T)

    Steps as the authors' ``floor(ms / deltaT)``: n_p = floor(duration_p / dt) for the fixed periods
    (up to a slack of 1e-9 steps for float ratios), and each trial's delay is
    d_b = floor(u_b / dt) with u_b ~ U[delay_min, delay_max), their continuous draw. Every trial is
    T = n_fix + n_stim1 + floor(delay_max / dt) + n_stim2 + n_dec steps long (the longest delay's
    layout, :meth:`periods`); a trial with a shorter delay ends with a rest of noise, target 0 and
    mask 0. At the authors' dt = 0.02 the defaults give 5, 25, 25..149, 25, 50 steps and T = 255.

    Each trial draws its two stimuli s_1, s_2 in {A, B} independently with equal odds (the authors'
    four types A-A, A-B, B-A, B-B) and is a catch trial with probability ``catch_fraction``. With
    e_A = (1, 0), e_B = (0, 1) and xi_t ~ N(0, 1)^2 i.i.d. for each step,

        x_t   = noise_std xi_t + e_{s_1} [t in stimulus1] + e_{s_2} [t in stimulus2]
        y*_t  = (+1 if s_1 = s_2 else -1) [t in decision],    mask_t = [t in decision]

    A catch trial is noise only, with y* = 0 and mask 0 throughout (the authors'
    ``fraction_catch_trials``: their mask is set only on real trials). Shapes: inputs (B, T, 2) =
    (A, B); targets, mask (B, T, 1). Loss ``"masked_mse"``: the squared error averaged over the
    decision windows, the authors' ``loss_mse`` (which averages per trial, the same here since every
    real trial's window has n_dec steps). :meth:`accuracy` gives the fraction of correct choices.

    The durations are in the unit of dt: seconds for the authors' dt = 20 ms (0.02) and tau = 100 ms
    (``tau = 0.1``, dt / tau = 0.2 as their alpha). Not part of the task: their networks' own noise
    (``noise_std = 5e-2`` of their RNN in ``train_dms.py`` and ``dms_fig1.py``). Their training shapes
    ``delay_max``: 2 s (full-rank priming), then 0.7, 1 and 4 s for the rank-2 networks, each stage on a
    fixed set of 800 trials in minibatches of 32 (their ``train`` default) or 128; here each batch is
    freshly drawn, of ``batch_size`` trials.

    Args (the defaults of the authors' ``dms.py``, but for batch_size):
        fixation: fixation duration (0.1).
        stimulus1, stimulus2: stimulus durations (0.5 each).
        delay_min, delay_max: the delay is drawn uniformly in [delay_min, delay_max) (0.5, 3).
        decision: decision window duration (1).
        noise_std: std of the input noise on both channels at every step (0.03, their ``std_default``).
        catch_fraction: probability of a catch trial (0).
        batch_size: trials per batch B (128).
    """

    fixation: float = setting(0.1, doc="fixation duration", ge=0)
    stimulus1: float = setting(0.5, doc="duration of the first stimulus", gt=0)
    delay_min: float = setting(0.5, doc="shortest delay (the delay is uniform in [delay_min, delay_max))", ge=0)
    delay_max: float = setting(3.0, doc="longest delay (the delay is uniform in [delay_min, delay_max))", ge=0)
    stimulus2: float = setting(0.5, doc="duration of the second stimulus", gt=0)
    decision: float = setting(1.0, doc="decision window duration", gt=0)
    noise_std: float = setting(0.03, doc="input noise std on both channels", ge=0)
    catch_fraction: float = setting(0.0, doc="probability of a catch trial (noise only, target 0, mask 0)", ge=0, le=1)
    batch_size: int = setting(128, doc="trials per batch B", ge=1)
    loss_kind: str = "masked_mse"

    def __post_init__(self):
        super().__post_init__()
        loss_kind(type(self).__name__, self.loss_kind)
        if self.delay_max < self.delay_min:
            raise TaskSettingError(
                type(self).__name__, "delay_max", self.delay_max, f"must be >= delay_min = {self.delay_min!r}"
            )

    n_in = property(lambda self: 2)
    n_out = property(lambda self: 1)
    deterministic = property(lambda self: False)

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
        key_stim, key_delay, key_catch, key_noise = jax.random.split(key, 4)
        real = real_trials(key_catch, B, self.catch_fraction, dtype)
        stimuli = jax.random.randint(key_stim, (B, 2), 0, 2)  # (B, 2): 0 = A, 1 = B
        delay = jax.random.uniform(key_delay, (B,), dtype=dtype, minval=self.delay_min, maxval=self.delay_max)
        start2 = periods["stimulus1"].stop + jnp.floor(delay / dt + STEP_SLACK).astype(int)  # (B,) stimulus 2 onset
        stim1, stim2, decision = two_stimulus_windows(periods, steps, start2, real, dtype)
        codes = jax.nn.one_hot(stimuli, 2, dtype=dtype)  # (B, 2 stimuli, 2 channels)
        noise = self.noise_std * jax.random.normal(key_noise, (B, T, 2), dtype=dtype)
        inputs = noise + stim1[..., None] * codes[:, None, 0] + stim2[..., None] * codes[:, None, 1]
        match = jnp.where(stimuli[:, 0] == stimuli[:, 1], 1.0, -1.0).astype(dtype)  # (B,)
        return Batch(inputs, (match[:, None] * decision)[..., None], decision[..., None])

    def accuracy(self, outputs: jax.Array, batch: Batch) -> jax.Array:
        r"""Fraction of correct choices over the non-catch trials: the sign of the mean output over the
        decision window against the target's (±1), as the authors' ``accuracy_dms``
        (:func:`~overlapflow.tasks._choice.sign_choice_accuracy`). outputs (B, T, 1); returns a scalar."""
        return sign_choice_accuracy(outputs, batch)
