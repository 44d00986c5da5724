r"""Perceptual decision making: integrate a noisy stimulus, report its sign after a delay."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from ._checks import check_dt, consecutive_periods, jitted_sample, loss_kind
from .base import AbstractTask, Batch
from .fields import setting

TARGETS = ("continuous", "sign")
COHERENCE_GAIN = 3.2 / 100  # input mean per unit coherence during the stimulus
COHERENCE_SCALE = 16.0  # continuous target = coh / 16


@dataclasses.dataclass(frozen=True)
class DecisionMaking(AbstractTask, kind="decision_making"):
    r"""Perceptual decision making (task B of the A/B -> C experiment, paper figs. 4d-f, 9, 10).

    A trial has four periods, in steps n_p = round(duration_p / dt):
    fixation | stimulus | delay | response, T = n_fix + n_stim + n_delay + n_resp
    (``t_max`` = the sum of the four durations). Each trial draws a coherence coh uniformly from
    ``coherences``; with xi_t ~ N(0, 1) i.i.d.,

        x_t  = noise_std xi_t + (coh 3.2 / 100) [t in stimulus]
        y*_t = v(coh) [t in response],    v = coh / 16 ("continuous") or sign(coh) ("sign")
        mask = [t in response]

    Shapes: inputs, targets, mask (B, T, 1). Loss ``"masked_mse"`` (squared error averaged over
    the response period).

    Args (paper defaults):
        coherences: the coherence values, drawn with equal odds ((-16, -8, -2, 2, 8, 16)).
        fixation, stimulus, delay, response: period durations (1, 9, 1, 9).
        noise_std: input noise std (0.03; the paper uses 0.03 to 0.05).
        batch_size: trials per batch B (128).
        target: ``"continuous"`` (coh / 16) or ``"sign"`` (sign(coh)).
    """

    coherences: tuple[float, ...] = setting(
        (-16, -8, -2, 2, 8, 16), doc="coherence values, drawn with equal odds", min_length=1
    )
    fixation: float = setting(1.0, doc="fixation duration", ge=0)
    stimulus: float = setting(9.0, doc="stimulus duration", gt=0)
    delay: float = setting(1.0, doc="delay duration", ge=0)
    response: float = setting(9.0, doc="response duration", gt=0)
    noise_std: float = setting(0.03, doc="input noise std", ge=0)
    batch_size: int = setting(128, doc="trials per batch B", ge=1)
    target: Literal[TARGETS] = setting("continuous", doc="continuous: coh / 16; sign: sign(coh)")
    loss_kind: str = "masked_mse"

    def __post_init__(self):
        super().__post_init__()
        loss_kind(type(self).__name__, self.loss_kind)

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)
    deterministic = property(lambda self: False)

    @property
    def t_max(self) -> float:
        """Trial length: fixation + stimulus + delay + response."""
        return self.fixation + self.stimulus + self.delay + self.response

    def periods(self, dt: float) -> dict[str, slice]:
        """Step ranges of the four periods at dt (each round(duration / dt) steps)."""
        return consecutive_periods(
            self,
            dt,
            ("fixation", "stimulus", "delay", "response"),
            ("stimulus", "response"),
            lambda duration, dt: round(duration / dt),
            "shorter than half a step",
        )

    def sample(self, key: jax.Array, dt: float) -> Batch:
        return jitted_sample(self, key, check_dt(type(self).__name__, dt))

    def _sample(self, key: jax.Array, dt: float) -> Batch:
        periods = self.periods(dt)
        T = periods["response"].stop
        dtype = jnp.result_type(float)
        key_coh, key_noise = jax.random.split(key)
        coh = jnp.asarray(self.coherences, dtype=dtype)[
            jax.random.randint(key_coh, (self.batch_size,), 0, len(self.coherences))
        ]  # (B,)
        t = jnp.arange(T)
        stimulus = ((t >= periods["stimulus"].start) & (t < periods["stimulus"].stop)).astype(dtype)
        response = ((t >= periods["response"].start) & (t < periods["response"].stop)).astype(dtype)
        value = coh / COHERENCE_SCALE if self.target == "continuous" else jnp.sign(coh)
        noise = self.noise_std * jax.random.normal(key_noise, (self.batch_size, T), dtype=dtype)
        inputs = noise + COHERENCE_GAIN * coh[:, None] * stimulus[None, :]
        targets = value[:, None] * response[None, :]
        mask = jnp.broadcast_to(response, (self.batch_size, T))
        return Batch(inputs[..., None], targets[..., None], mask[..., None])
