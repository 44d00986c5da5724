r"""The n-bit flip-flop task: remember the sign of the last input pulse on each bit."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp

from ._checks import check_dt, check_steps, jitted_sample, loss_kind
from .base import AbstractTask, Batch
from .fields import TaskSettingError, setting

#: How consecutive pulses are spaced: the authors' generator, or onset to onset.
SPACINGS = ("after_delay", "onset")


def _running_sum(x: jax.Array) -> jax.Array:
    """Cumulative sum over axis 1 as a loop over time: O(T) work (jnp.cumsum lowers to a
    reduce-window of O(T^2) on CPU; 1.0 ms against 0.44 ms for a batch of 128 x 400 steps)."""
    add = lambda total, x_t: (total + x_t, total + x_t)
    _, sums = jax.lax.scan(add, jnp.zeros_like(x[:, 0]), jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(sums, 0, 1)


def _truncated_steps(steps: float) -> int:
    """floor(steps), as the authors' int(duration / dt); the 1e-9 absorbs float error such as
    0.3 / 0.1 = 2.9999999999999996."""
    return math.floor(steps + 1e-9)


@dataclasses.dataclass(frozen=True)
class FlipFlop(AbstractTask, kind="flipflop"):
    r"""n-bit flip-flop (paper figs. 4a-c and 8; task A of the A/B -> C experiment).

    Each bit b = 1..n_bits of each trial carries its own independent pulse train. Times are
    discretised on the grid t = k dt, k = 0..T-1, T = round(t_max / dt). Pulse i lasts P steps,
    is followed by M masked steps, and has sign s_i = +-1 (equal odds).

    ``spacing = "after_delay"`` (default; the authors' generator, ``flip_flop`` in the paper's
    ``code/nonlinear.ipynb``): durations are truncated to whole steps, P = max(1, floor(
    pulse_duration / dt)), M = floor(mask_after / dt), k_0 = floor(first_pulse / dt), and each wait
    is counted **from the end of the previous pulse's masked delay**:

        k_{i+1} = k_i + P + M + floor(w_i / dt),     w_i ~ U(wait_range) i.i.d.

    ``spacing = "onset"``: durations are rounded, P = max(1, round(pulse_duration / dt)), and
    waits are measured **from onset to onset**, k_{i+1} = k_i + round(w_i / dt) (so
    ``wait_range[0] >= pulse_duration`` keeps pulses apart).

    In both:

    - input x_{k,b} = input_amp s_i on k_i <= k < k_i + P, 0 elsewhere;
    - target y*_{k,b} = target_amp s_last(k), s_last(k) the sign of the last pulse with
      k_i <= k (the target flips at the pulse onset); y* = 0 before the first pulse;
    - mask = 0 on k_i - 1 <= k < k_i + P + M (from one step before each onset until
      M steps after the pulse ends) and before the first pulse (k < k_0); 1 elsewhere.

    Sampling is vectorised: a fixed number K = ceil(T / d_min) + 1 of onsets per bit (d_min the
    shortest onset-to-onset distance in steps, so every onset inside the trial is among them) is drawn at once;
    every per-step array is then a running sum over the onsets, sum_i v_i [k >= k_i], computed by
    scattering v_i to step k_i and a cumulative sum over time (O(B T n_bits) work and memory):
    the target via the telescoping sum s_last(k) = sum_{i: k_i <= k} (s_i - s_{i-1}), s_{-1} = 0;
    the input as +s_i at k_i minus s_i at k_i + P; the mask from a count of open windows. All of
    these sums are of small integers, so they are exact.

    Shapes: inputs, targets, mask (B, T, n_bits); n_in = n_out = n_bits. Loss ``"masked_mse"``
    (sum of masked squared errors / number of unmasked entries).

    Args (paper defaults for figs. 4a-c, 8; task A of the A/B -> C experiment uses wait_range
    (1, 2), input_amp 2, target_amp 1, batch 128, dt 0.05):
        n_bits: number of independent bits (1).
        batch_size: trials per batch B (10).
        t_max: trial length (20.0).
        first_pulse: onset of the first pulse, in time units, 0 <= first_pulse < t_max (0.5).
        wait_range: (low, high) of the uniform wait (4.0, 10.0); see ``spacing``.
        pulse_duration: length of each pulse (0.5).
        input_amp: pulse amplitude on the input (1.0).
        target_amp: amplitude of the held target (0.5).
        mask_after: masked time after each pulse ends (2.0).
        spacing: ``"after_delay"`` (the authors' generator) or ``"onset"`` (waits onset to onset).
    """

    n_bits: int = setting(1, doc="number of bits (= the network's n_in and n_out)", ge=1)
    batch_size: int = setting(10, doc="trials per batch B", ge=1)
    t_max: float = setting(20.0, doc="trial length", gt=0)
    first_pulse: float = setting(0.5, doc="onset of the first pulse", ge=0)
    wait_range: tuple[float, float] = setting((4.0, 10.0), doc="(low, high) of the uniform wait between pulses", gt=0)
    pulse_duration: float = setting(0.5, doc="pulse length", gt=0)
    input_amp: float = setting(1.0, doc="pulse amplitude")
    target_amp: float = setting(0.5, doc="held target amplitude")
    mask_after: float = setting(2.0, doc="masked time after a pulse", ge=0)
    spacing: Literal[SPACINGS] = setting(
        "after_delay", doc="waits counted from the end of the masked delay (the authors') or onset to onset"
    )
    loss_kind: str = "masked_mse"

    def __post_init__(self):
        super().__post_init__()
        name, (low, high) = type(self).__name__, self.wait_range
        loss_kind(name, self.loss_kind)
        if not low <= high:
            raise TaskSettingError(name, "wait_range", self.wait_range, "must be (low, high) with low <= high")
        if not self.first_pulse < self.t_max:
            raise TaskSettingError(
                name,
                "first_pulse",
                self.first_pulse,
                f"must be < t_max = {self.t_max!r} (the first pulse must start inside the trial)",
            )
        if self.spacing == "onset" and low < self.pulse_duration:
            raise TaskSettingError(
                name,
                "wait_range",
                self.wait_range,
                f"low = {low!r} is shorter than pulse_duration = {self.pulse_duration!r}; waits are measured "
                "onset to onset, so low must be >= pulse_duration",
            )

    n_in = property(lambda self: self.n_bits)
    n_out = property(lambda self: self.n_bits)
    deterministic = property(lambda self: False)

    def steps(self, dt: float) -> dict[str, int]:
        """The task's durations in Euler steps at dt: T, first onset, pulse length P, masked
        steps after a pulse M, the shortest and longest wait in steps, the shortest distance
        between two onsets, and the number K of onsets drawn per bit."""
        name = type(self).__name__
        T = check_steps(name, self.t_max, dt)
        steps = _truncated_steps if self.spacing == "after_delay" else round
        first = steps(self.first_pulse / dt)
        if first >= T:
            raise TaskSettingError(
                name,
                "first_pulse",
                self.first_pulse,
                f"starts at step {first} at dt = {dt!r}, at or after the end of the trial's T = {T} steps "
                f"(t_max = {self.t_max!r}): the first pulse must start inside it",
            )
        pulse = max(1, steps(self.pulse_duration / dt))
        mask_after = steps(self.mask_after / dt)
        wait_min, wait_max = (steps(w / dt) for w in self.wait_range)
        between = pulse + mask_after + wait_min if self.spacing == "after_delay" else max(pulse, wait_min)
        return dict(
            T=T,
            first=first,
            pulse=pulse,
            mask_after=mask_after,
            wait_min=wait_min,
            wait_max=wait_max,
            between_min=max(1, between),
            n_onsets=math.ceil(T / max(1, between)) + 1,
        )

    def sample(self, key: jax.Array, dt: float) -> Batch:
        return jitted_sample(self, key, check_dt(type(self).__name__, dt))

    def _sample(self, key: jax.Array, dt: float) -> Batch:
        s = self.steps(dt)
        B, n, K, P = self.batch_size, self.n_bits, s["n_onsets"], s["pulse"]
        dtype = jnp.result_type(float)
        # one uniform draw per onset and per wait (a single random-bits call compiles fastest)
        uniform = jax.random.uniform(key, (B, n, 2 * K - 1), dtype=dtype)
        low, high = self.wait_range
        waits = low + (high - low) * uniform[..., K:]
        if self.spacing == "after_delay":  # the next wait starts when the masked delay ends
            wait_steps = jnp.floor(waits / dt).astype(jnp.int32) + (P + s["mask_after"])
        else:
            wait_steps = jnp.round(waits / dt).astype(jnp.int32)
        wait_steps = jnp.maximum(wait_steps, s["between_min"])
        onsets = s["first"] + jnp.concatenate(
            [jnp.zeros((B, n, 1), jnp.int32), jnp.cumsum(wait_steps, axis=-1, dtype=jnp.int32)], axis=-1
        )  # (B, n, K)
        signs = jnp.where(uniform[..., :K] < 0.5, 1.0, -1.0).astype(dtype)

        # Every per-step array is a running sum over events: sum_e v_e [k >= step_e]. The events
        # (step, values on 3 channels: target flip, input, open mask windows) are scattered onto
        # the time grid at once and summed cumulatively over time; steps are clipped to [0, T] and
        # slot T collects the events after the trial.
        T, zero = s["T"], jnp.zeros_like(signs)
        previous = jnp.concatenate([zero[..., :1], signs[..., :-1]], axis=-1)
        # a pulse after the trial masks nothing (not even the step before it), as in the authors' generator
        mask_open = jnp.where(onsets < T, onsets - 1, T)
        steps = jnp.concatenate([onsets, onsets + P, mask_open, onsets + P + s["mask_after"]], axis=-1)
        values = jnp.stack(
            [
                jnp.concatenate([signs - previous, zero, zero, zero], axis=-1),  # telescoping: s_last(k)
                jnp.concatenate([signs, -signs, zero, zero], axis=-1),  # pulse on k_i <= k < k_i + P
                jnp.concatenate([zero, zero, zero + 1, zero - 1], axis=-1),  # k_i - 1 <= k < k_i + P + M
            ],
            axis=-1,
        )  # (B, n, 4K, 3)
        b_index = jnp.arange(B)[:, None, None]
        bit_index = jnp.arange(n)[None, :, None]
        events = jnp.zeros((B, T + 1, n, 3), dtype).at[b_index, jnp.clip(steps, 0, T), bit_index].add(values)
        sums = _running_sum(events)[:, :T]  # (B, T, n, 3)
        targets = self.target_amp * sums[..., 0]
        inputs = self.input_amp * sums[..., 1]
        after_first = (jnp.arange(T) >= s["first"])[None, :, None]
        mask = ((sums[..., 2] == 0) & after_first).astype(dtype)
        return Batch(inputs, targets, mask)
