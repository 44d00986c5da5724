r"""Context-dependent decision making (Mante et al. 2013 as set up by Dubreuil et al. 2022): report the
sign of whichever of two noisy stimuli a context cue selects."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from ._checks import check_dt, consecutive_periods, jitted_sample, loss_kind
from .base import AbstractTask, Batch
from .fields import TaskSettingError, setting

PERIODS = ("fixation", "context_only", "stimulus", "delay", "decision")
#: Periods that must last at least one step (the rest may be empty).
NONEMPTY = ("stimulus", "decision")
#: Slack on duration / dt before truncating, so that float ratios such as 0.3 / 0.1 = 2.9999999999999996
#: still count 3 steps.
STEP_SLACK = 1e-9


def period_steps(duration: float, dt: float) -> int:
    """Steps of a period: floor(duration / dt), the truncation of the authors' ``floor(ms / deltaT)``."""
    return math.floor(duration / dt + STEP_SLACK)


@dataclasses.dataclass(frozen=True)
class ContextDecision(AbstractTask, kind="context_decision"):
    r"""Context-dependent decision making, the task of Dubreuil et al. 2022 (their ``mante.py``).

    A trial has five periods; period p lasts n_p = floor(duration_p / dt) steps (the authors'
    truncation, up to a slack of 1e-9 steps for float ratios: at dt = 0.02 the defaults give 5, 17,
    40, 5, 1 steps, T = 68, as theirs; rounding would give 18 context-only steps, 0.35 / 0.02 = 17.5):

        fixation | context_only | stimulus | delay | decision

    Each trial draws two coherences c_1, c_2 independently and uniformly from ``coherences``, the
    cued context k in {1, 2} with equal odds, and is a catch trial with probability
    ``catch_fraction``. With xi_t ~ N(0, 1) i.i.d. for each step and sensory channel j = 1, 2,

        x_{t,j}   = noise_std xi_{t,j} + coherence_gain c_j [t in stimulus]
        x_{t,2+k} = context_cue [fixation ends <= t < decision starts]    (the other context channel 0)
        y*_t      = sign(c_k) [t in decision],    mask_t = [t in decision]

    (with ``swap_contexts`` the cue of context channel k selects the other stimulus: y*_t = sign(c_{3-k}),
    a new context assignment for a network trained on the first).

    A catch trial has c_1 = c_2 = 0, no context cue and y* = 0 (its mask is that of the others), as
    the authors' ``fraction_catch_trials``. Shapes: inputs (B, T, 4) = (sensory 1, sensory 2,
    context 1, context 2); targets, mask (B, T, 1). Loss ``"masked_mse"`` (squared error averaged
    over the decision window); :meth:`accuracy` gives the fraction of correct choices.

    The durations are in the unit of dt: seconds for the authors' dt = 20 ms (0.02) and tau = 100 ms
    (``tau = 0.1``, so dt / tau = 0.2 as their alpha). Their trained rank-1 network saw
    ``context_cue = 0.5`` (its training script and figure notebook); their module's default, kept
    here, is 0.1. They trained on one fixed set of 800 trials in minibatches of 32; here each batch
    is freshly drawn, of ``batch_size`` trials.

    Args (the authors' defaults, but for batch_size):
        coherences: nonzero coherence values, drawn with equal odds ((-4, -2, -1, 1, 2, 4)).
        coherence_gain: sensory input mean per unit coherence during the stimulus (0.1).
        noise_std: std of the sensory channels' noise at every step (0.1).
        context_cue: the cued context channel's value (0.1).
        fixation, context_only, stimulus, delay, decision: period durations (0.1, 0.35, 0.8, 0.1, 0.02).
        catch_fraction: probability of a catch trial (0).
        swap_contexts: the context channel k cues stimulus 3 - k instead of k (False; not the authors').
        batch_size: trials per batch B (128).
    """

    coherences: tuple[float, ...] = setting(
        (-4, -2, -1, 1, 2, 4),
        doc="nonzero coherence values, drawn with equal odds for each sensory channel",
        min_length=1,
    )
    coherence_gain: float = setting(0.1, doc="sensory input mean per unit coherence during the stimulus", gt=0)
    noise_std: float = setting(0.1, doc="noise std of the sensory channels", ge=0)
    context_cue: float = setting(0.1, doc="value of the cued context channel", gt=0)
    fixation: float = setting(0.1, doc="fixation duration", ge=0)
    context_only: float = setting(0.35, doc="duration of the context cue before the stimulus", ge=0)
    stimulus: float = setting(0.8, doc="stimulus duration", gt=0)
    delay: float = setting(0.1, doc="delay duration", ge=0)
    decision: float = setting(0.02, doc="decision window duration", gt=0)
    catch_fraction: float = setting(0.0, doc="probability of a catch trial (no stimulus, no cue, target 0)", ge=0, le=1)
    swap_contexts: bool = setting(False, doc="context channel k cues stimulus 3 - k instead of stimulus k")
    batch_size: int = setting(128, doc="trials per batch B", ge=1)
    loss_kind: str = "masked_mse"

    def __post_init__(self):
        super().__post_init__()
        loss_kind(type(self).__name__, self.loss_kind)
        if 0 in self.coherences:
            raise TaskSettingError(
                type(self).__name__,
                "coherences",
                self.coherences,
                "entries must be nonzero (the target is the sign of the cued coherence)",
            )

    n_in = property(lambda self: 4)
    n_out = property(lambda self: 1)
    deterministic = property(lambda self: False)

    def periods(self, dt: float) -> dict[str, slice]:
        """Step ranges of the five periods at dt (each :func:`period_steps` long, in order)."""
        return consecutive_periods(self, dt, PERIODS, NONEMPTY, period_steps, "shorter than one step")

    def sample(self, key: jax.Array, dt: float) -> Batch:
        return jitted_sample(self, key, check_dt(type(self).__name__, dt))

    def _sample(self, key: jax.Array, dt: float) -> Batch:
        periods = self.periods(dt)
        T, B = periods["decision"].stop, self.batch_size
        dtype = jnp.result_type(float)
        key_coh, key_ctx, key_catch, key_noise = jax.random.split(key, 4)
        real = (jax.random.uniform(key_catch, (B,), dtype=dtype) >= self.catch_fraction).astype(dtype)  # (B,)
        coh = jnp.asarray(self.coherences, dtype=dtype)[jax.random.randint(key_coh, (B, 2), 0, len(self.coherences))]
        coh = coh * real[:, None]  # (B, 2)
        cue = jax.nn.one_hot(jax.random.randint(key_ctx, (B,), 0, 2), 2, dtype=dtype) * real[:, None]  # (B, 2)
        t = jnp.arange(T)
        stimulus = ((t >= periods["stimulus"].start) & (t < periods["stimulus"].stop)).astype(dtype)
        context = ((t >= periods["fixation"].stop) & (t < periods["decision"].start)).astype(dtype)
        decision = (t >= periods["decision"].start).astype(dtype)
        noise = self.noise_std * jax.random.normal(key_noise, (B, T, 2), dtype=dtype)
        sensory = noise + self.coherence_gain * coh[:, None, :] * stimulus[None, :, None]
        contexts = self.context_cue * cue[:, None, :] * context[None, :, None]
        cued = cue[:, ::-1] if self.swap_contexts else cue  # (B, 2): the stimulus each trial's context selects
        choice = jnp.sum(cued * jnp.sign(coh), axis=1)  # (B,): sign(c_k), 0 on catch trials
        targets = choice[:, None, None] * decision[None, :, None]
        mask = jnp.broadcast_to(decision[None, :, None], (B, T, 1))
        return Batch(jnp.concatenate([sensory, contexts], axis=-1), targets, mask)

    def accuracy(self, outputs: jax.Array, batch: Batch) -> jax.Array:
        r"""Fraction of correct choices: trials whose mean output over the decision window has the
        sign of the target there, as the authors' ``accuracy_mante``.

        With the window from the mask, d_b = sum_t mask y_{b,t} / sum_t mask and
        d*_b = sum_t mask y*_{b,t}, accuracy = mean over non-catch trials (d*_b != 0) of
        [sign(d_b) = sign(d*_b)]. outputs (B, T, 1), a batch of this task; returns a scalar
        (nan if every trial is a catch trial).
        """
        mask = batch.mask[..., 0]
        made = jnp.sum(mask * outputs[..., 0], axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)  # (B,)
        wanted = jnp.sign(jnp.sum(mask * batch.targets[..., 0], axis=1))  # (B,)
        real = wanted != 0
        return jnp.sum(real & (jnp.sign(made) == wanted)) / jnp.sum(real)
