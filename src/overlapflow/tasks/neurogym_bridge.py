r"""A neurogym environment as an overlapflow task: a bank of trials drawn once, batches picked from it
by the key."""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from .._extras import MissingExtra
from ._checks import check_dt, jitted_sample, loss_kind
from .base import AbstractTask, Batch
from .fields import TaskSettingError, setting

READOUTS = ("auto", "signed", "one_hot")
#: What installs neurogym next to overlapflow (2.3 needs torch to import and pins numpy 2.2).
INSTALL = "pip install neurogym==2.2.0"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class NeuroGym(AbstractTask):
    r"""A neurogym environment (Molano-Mazon et al., neurogym) as a task for every engine.

    ``NeuroGym("PerceptualDecisionMaking-v0", batch_size=16, seq_len=100, dt=100)`` makes the environment
    with ``neurogym.make(env, **env_kwargs)`` (neurogym is imported only here; without it the error
    names ``pip install neurogym==2.2.0``); an environment object is used as given (a neurogym
    ``TrialEnv``, a ``TrialWrapper``, or anything with the same trial interface).

    **Trials.** neurogym makes trials in Python: ``env.new_trial()`` fills ``env.ob`` (T_trial, n_obs)
    and ``env.gt`` (T_trial,), the class label of each step (0 = fixation, 1..n = the choices), which
    is what ``neurogym.Dataset`` reads. Engines sample a batch inside JAX from one key per epoch
    (``jax.random.fold_in(key, epoch)``), in ``lax.scan`` and under ``vmap``, where Python cannot run.
    So the task draws a bank of ``bank_size`` rows once, at construction, after ``env.seed(seed)``
    (the same seed gives the same bank), and :meth:`sample` picks ``batch_size`` distinct rows with
    ``jax.random.choice(key, bank_size, (batch_size,), replace=False)``: a pure function of the key,
    so every engine given the same key sees the same trials. Each row is laid out as a row of
    ``neurogym.Dataset``'s first batch: whole trials back to back from a trial onset, the last one cut
    at ``seq_len`` steps. Epochs resample the bank's trials rather than draw new ones: take
    ``bank_size`` well above ``batch_size``.

    **Targets.** A mean-squared loss wants read-outs, not class labels. With n choices
    (``action_space.n = n + 1``) and label g_t of each step,

    - ``"signed"`` (n = 2; ``"auto"`` picks it then): y*_t = [g_t = 1] - [g_t = 2], one output;
    - ``"one_hot"`` (any n; ``"auto"`` otherwise): y*_t = e_{g_t} in R^n, 0 for fixation;

        mask_t = 1 where g_t != 0,  ``fixation_weight`` where g_t = 0 (on every output)

    so with the default weight 0 the loss sees the choice steps only (fixation masked); neurogym's
    supervised notebooks weight the fixation class 0.05 (``contextdecisionmaking``, ``yang19``) or 1
    (``supervised_learning_pytorch``). A task whose label 0 is also an answer (GoNogo's no-go) needs
    a weight > 0 to learn it. Loss ``"masked_mse"``: sum mask (y - y*)^2 / sum mask.

    **Time.** One network step is one environment step (``env.dt`` ms, 100 by default); the ``dt``
    given to :meth:`sample` is only checked, so choose the network's dt / tau to match (e.g.
    ``env_kwargs dt=20`` with tau = 100 ms is dt / tau = 0.2).

    Shapes: inputs (B, T, n_obs), targets and mask (B, T, n_out) with B = ``batch_size``,
    T = ``seq_len``, n_out = 1 (signed) or n (one-hot). Not a TOML kind (the bank is drawn in Python).

    Args:
        env: a registered environment name (``"PerceptualDecisionMaking-v0"``) or an environment.
        batch_size: trials (rows) per batch B (16, as neurogym's supervised example).
        seq_len: steps per row T (100, as that example).
        bank_size: rows drawn at construction (1024); at least batch_size.
        seed: seed of the environment's random state for the bank (0).
        readout: ``"auto"``, ``"signed"`` or ``"one_hot"`` (above).
        fixation_weight: the mask on fixation steps (0).
        loss: the loss kind (``"masked_mse"``).
        **env_kwargs: passed to ``neurogym.make`` (only with a name), e.g. ``dt``, ``timing``.
    """

    env: str = setting(doc="the environment's name (or its class name when given as an object)")
    batch_size: int = setting(16, doc="trials per batch B", ge=1)
    seq_len: int = setting(100, doc="steps per row T", ge=1)
    bank_size: int = setting(1024, doc="rows drawn at construction", ge=1)
    seed: int = setting(0, doc="seed of the environment for the bank", ge=0)
    readout: Literal[READOUTS] = setting("auto", doc="auto, signed or one_hot")
    fixation_weight: float = setting(0.0, doc="mask on fixation steps", ge=0)
    env_kwargs: tuple = ()
    env_dt: float | None = None
    inputs: np.ndarray = dataclasses.field(default=None)  # (bank_size, T, n_obs)
    targets: np.ndarray = dataclasses.field(default=None)  # (bank_size, T, n_out)
    mask: np.ndarray = dataclasses.field(default=None)  # (bank_size, T, n_out)
    loss_kind: str = "masked_mse"

    def __init__(
        self,
        env="PerceptualDecisionMaking-v0",
        batch_size: int = 16,
        seq_len: int = 100,
        *,
        bank_size: int = 1024,
        seed: int = 0,
        readout: str = "auto",
        fixation_weight: float = 0.0,
        loss: str = "masked_mse",
        **env_kwargs,
    ):
        name = "NeuroGym"
        given = dict(batch_size=batch_size, seq_len=seq_len, bank_size=bank_size, seed=seed)
        given |= dict(readout=readout, fixation_weight=fixation_weight, loss_kind=loss_kind(name, loss))
        given |= dict(env=env if isinstance(env, str) else type(env).__name__, env_kwargs=tuple(env_kwargs.items()))
        for field, value in given.items():
            object.__setattr__(self, field, value)
        AbstractTask.__post_init__(self)  # the settings' types and bounds
        if bank_size < batch_size:
            raise TaskSettingError(name, "bank_size", bank_size, f"must be >= batch_size = {batch_size!r}")
        if env_kwargs and not isinstance(env, str):
            raise TaskSettingError(name, "env_kwargs", env_kwargs, "only with an environment name")
        source = make_env(env, env_kwargs) if isinstance(env, str) else env
        source = source if hasattr(type(source), "new_trial") else getattr(source, "unwrapped", source)
        base = getattr(source, "unwrapped", source)  # holds ob, gt, the spaces and the random state
        n_choices = _choices(base) - 1
        if readout == "signed" and n_choices != 2:
            raise TaskSettingError(name, "readout", readout, f"needs two choices; {self.env} has {n_choices}")
        chosen = ("signed" if n_choices == 2 else "one_hot") if readout == "auto" else readout
        base.seed(seed)
        inputs, labels = draw_rows(source, base, bank_size, seq_len)
        if labels.min() < 0 or labels.max() > n_choices:
            found = sorted(set(labels.ravel().tolist()))
            raise TaskSettingError(name, "env", self.env, f"gave labels {found}; expected 0..{n_choices}")
        targets = class_targets(chosen, n_choices)[labels]  # (bank, T, n_out)
        mask = np.where(labels[..., None] != 0, 1.0, fixation_weight) * np.ones_like(targets)
        for field, value in dict(readout=chosen, env_dt=getattr(base, "dt", None)).items():
            object.__setattr__(self, field, value)
        for field, value in dict(inputs=inputs, targets=targets, mask=mask).items():
            value.flags.writeable = False
            object.__setattr__(self, field, value)

    n_in = property(lambda self: self.inputs.shape[-1])
    n_out = property(lambda self: self.targets.shape[-1])
    deterministic = property(lambda self: False)

    def sample(self, key: jax.Array, dt: float) -> Batch:
        return jitted_sample(self, key, check_dt(type(self).__name__, dt))

    def _sample(self, key: jax.Array, dt: float) -> Batch:
        rows = jax.random.choice(key, self.bank_size, (self.batch_size,), replace=False)
        dtype = jnp.result_type(float)
        return Batch(*(jnp.asarray(a, dtype=dtype)[rows] for a in (self.inputs, self.targets, self.mask)))

    def accuracy(self, outputs: jax.Array, batch: Batch) -> jax.Array:
        r"""Fraction of choice steps (label != 0) read out as their label.

        Each step's output y_t (n_out,) is read as the class c whose target is nearest,
        argmin_c |y_t - y*(c)|^2 over the fixation class (y* = 0) and the n choices (the read-out analogue
        of neurogym's argmax over actions); the label is that of y*_t. outputs (B, T, n_out), a
        batch of this task; returns a scalar (nan if the batch has no choice step).
        """
        classes = jnp.asarray(class_targets(self.readout, self._n_choices()), dtype=outputs.dtype)  # (n + 1, n_out)

        def nearest(y):  # (B, T, n_out) -> (B, T) class index
            return jnp.argmin(jnp.sum((y[..., None, :] - classes) ** 2, axis=-1), axis=-1)

        label = nearest(batch.targets)
        choice = label != 0
        return jnp.sum(choice & (nearest(outputs) == label)) / jnp.sum(choice)

    def _n_choices(self) -> int:
        return 2 if self.readout == "signed" else self.n_out

    def describe(self) -> str:
        kwargs = "".join(f", {k}={v!r}" for k, v in self.env_kwargs)
        return (
            f"NeuroGym(env={self.env!r}{kwargs}, batch_size={self.batch_size}, seq_len={self.seq_len}, "
            f"bank_size={self.bank_size}, seed={self.seed}, readout={self.readout!r}, "
            f"fixation_weight={self.fixation_weight}, env_dt={self.env_dt}, loss={self.loss_kind!r})"
        )

    __repr__ = describe


def make_env(name: str, env_kwargs: dict):
    """``neurogym.make(name, **env_kwargs)``; a one-line :class:`~overlapflow._extras.MissingExtra`
    naming the pip command when neurogym does not import."""
    try:
        neurogym = importlib.import_module("neurogym")
    except ImportError as error:
        raise MissingExtra(f"NeuroGym({name!r}) needs neurogym: {INSTALL} ({error})") from None
    with warnings.catch_warnings():  # gymnasium's note that neurogym declares no render modes
        warnings.simplefilter("ignore", UserWarning)
        return neurogym.make(name, **env_kwargs)


def _choices(base) -> int:
    """The number of classes of a discrete action space (fixation included)."""
    space = getattr(base, "action_space", None)
    n = getattr(space, "n", None)
    if n is None or int(n) < 2:
        raise TaskSettingError(
            "NeuroGym", "env", type(base).__name__, f"action space {space}: needs a discrete one of 2 or more actions"
        )
    return int(n)


def draw_rows(source, base, n_rows: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_rows`` rows of ``seq_len`` steps, each filled with trials back to back from a trial onset
    (``source.new_trial()``, then ``base.ob``, ``base.gt``), the last one cut: observations
    (n_rows, seq_len, n_obs) float64 and labels (n_rows, seq_len) int."""
    inputs, labels = None, np.zeros((n_rows, seq_len), dtype=int)
    for row in range(n_rows):
        filled = 0
        while filled < seq_len:
            source.new_trial()
            ob, gt = np.asarray(base.ob, dtype=float), np.asarray(base.gt)
            if ob.ndim != 2 or gt.shape != ob.shape[:1] or len(ob) == 0:
                raise TaskSettingError(
                    "NeuroGym",
                    "env",
                    type(base).__name__,
                    f"a trial gave ob {ob.shape} and gt {gt.shape}; needs ob (T, n_obs), labels gt (T,), T >= 1",
                )
            if inputs is None:
                inputs = np.zeros((n_rows, seq_len, ob.shape[1]))
            n = min(len(ob), seq_len - filled)
            inputs[row, filled : filled + n], labels[row, filled : filled + n] = ob[:n], gt[:n]
            filled += n
    return inputs, labels


def class_targets(readout: str, n_choices: int) -> np.ndarray:
    """The target of each class label, (n_choices + 1, n_out): row 0 (fixation) zero; ``"signed"``
    rows +1, -1; ``"one_hot"`` row g the unit vector e_g of R^n_choices."""
    if readout == "signed":
        return np.array([[0.0], [1.0], [-1.0]])
    return np.eye(n_choices + 1)[:, 1:]
