r"""Networks of the field: the Ostojic lab's ``low_rank_rnns`` models, read from and written to their files.

The ``low_rank_rnns`` code (Dubreuil et al. 2022, Valente et al. 2022) saves a trained network as a
PyTorch ``state_dict`` (:mod:`overlapflow.torchfile` reads both torch formats without torch). Two of
its classes are read; all their vectors are converted exactly into overlapflow's theta = [M | U | V | Z].

**LowRankRNN**: keys wi (n_in, N), si (n_in,), m (N, R), n (N, R), wo (N, n_out), so (n_out,), h0 (N,)
(a ``rec_noise`` entry is ignored, as their loader does). Their step, with alpha = dt/tau and
xi_t ~ N(0, I_N),

    h_{t+1} = h_t + noise_std xi_t + alpha (-h_t + m n^T tanh(h_t) / N + (wi * si)^T x_t),
    y_t     = (wo * so)^T tanh(h_{t+1}) / N,                          h_0 = h0,

is overlapflow's (:mod:`overlapflow.model`, readout "after") with

    M = (wi * si)^T,   U = m,   V = n,   Z = wo * so,   phi = tanh,   dt / tau = alpha.

**SupportLowRankRNN** (populations): a Gaussian basis G = gaussian_basis (b, N), supports (K, N) with
supports[k, i] = 1 when neuron i is in population k, and per vector family a linear map of the basis
per population plus a bias (the population's mean),

    x[c, i] = sum_k supports[k, i] (sum_j x_weights[c, k, j] G[j, i] + x_biases[c, k]),

for wi (n_in rows), m, n (R rows each; m and n are used as (N, R), transposed), wo (n_out rows, no
bias) and h0 (one row, no bias; from h0_weights (K, b)). Their step has no 1/N:

    h_{t+1} = h_t + noise_std xi_t + alpha (-h_t + m n^T tanh(h_t) + wi^T x_t),   y_t = wo^T tanh(h_{t+1}),

which is overlapflow's with M = wi^T, U = m sqrt(N), V = n sqrt(N), Z = wo N. The population of
neuron i is the k with supports[k, i] = 1; neurons of no support (floor(w_k N) can leave a few) have
all-zero vectors and form one more population, K.

alpha and the noise are not saved in their files: they are arguments here (their defaults are the
lab's: alpha = 0.2, i.e. dt = 20 ms with tau = 100 ms, and noise_std = 0.05 in training). overlapflow's
networks start at h = 0 (h stays in the span of [M | U]), so a file with a non-zero initial state
h0 is refused rather than approximated. The noise has the same convention as
:func:`overlapflow.phenomena.noise_response` (``noise_std`` per step, not scaled by alpha).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
from jaxtyping import ArrayLike, Float

from .mixture import Mixture
from .model import LowRankRNN
from .torchfile import read_state_dict, write_state_dict

#: key -> dimension names of its shape, for each model class (their parameter order)
LOW_RANK_SHAPES = {
    "wi": ("n_in", "N"),
    "si": ("n_in",),
    "m": ("N", "R"),
    "n": ("N", "R"),
    "wo": ("N", "n_out"),
    "so": ("n_out",),
    "h0": ("N",),
}
SUPPORT_SHAPES = {
    "gaussian_basis": ("b", "N"),
    "supports": ("K", "N"),
    "weights": ("K",),
    "wi_weights": ("n_in", "K", "b"),
    "m_weights": ("R", "K", "b"),
    "n_weights": ("R", "K", "b"),
    "wo_weights": ("n_out", "K", "b"),
    "wi_biases": ("n_in", "K"),
    "m_biases": ("R", "K"),
    "n_biases": ("R", "K"),
    "h0_weights": ("K", "b"),
}
#: entries their loader drops before loading
IGNORED_KEYS = ("rec_noise",)


class NetworkFileError(ValueError):
    """A torch file that holds no network overlapflow can take; the message is one line starting with the path."""


@dataclasses.dataclass(frozen=True, eq=False)
class ImportedNetwork:
    """A ``low_rank_rnns`` network in overlapflow's terms.

    Attributes:
        rnn: the architecture (phi tanh, readout "after", dt = alpha tau).
        theta: (N, P) float64 connectivity [M | U | V | Z] (the file's float32 values, scaled in float64).
        labels: (N,) int64 population of each neuron (all 0 for a LowRankRNN).
        model: ``"LowRankRNN"`` or ``"SupportLowRankRNN"``.
        noise_std: the noise per step of their model (not in the file; for
            :func:`overlapflow.phenomena.noise_response`).
        source: the file read.
        file_format: ``"zip"`` or ``"legacy"`` (torch's two formats).
    """

    rnn: LowRankRNN
    theta: Float[np.ndarray, "N P"]
    labels: np.ndarray
    model: str
    noise_std: float
    source: str
    file_format: str

    @property
    def N(self) -> int:
        return self.theta.shape[0]

    def mixture(self) -> Mixture:
        """The empirical law of the rows per population (:meth:`overlapflow.Mixture.from_params`)."""
        return Mixture.from_params(self.rnn, self.theta, self.labels)


def _fail(source: str, message: str):
    raise NetworkFileError(f"{source}: {message}")


def _check_keys(source: str, tensors: dict, shapes: dict, model: str) -> None:
    missing = [k for k in shapes if k not in tensors]
    unexpected = [k for k in tensors if k not in shapes]
    if missing:
        _fail(source, f"a {model} state_dict without the keys {missing}")
    if unexpected:
        _fail(source, f"unexpected keys {unexpected} for a {model} state_dict (its keys: {list(shapes)})")


def _dims(source: str, tensors: dict, shapes: dict) -> dict[str, int]:
    """Resolve the named dimensions key by key; the first key that disagrees is named."""
    dims: dict[str, int] = {}
    for key, names in shapes.items():
        shape = tensors[key].shape
        if len(shape) != len(names) or any(dims.get(d, s) != s for d, s in zip(names, shape, strict=False)):
            known = ", ".join(f"{d} = {dims[d]}" for d in dict.fromkeys(names) if d in dims)
            allowed = f"({', '.join(names)}{',' if len(names) == 1 else ''})"
            _fail(source, f"{key}: shape {shape}; must be {allowed}{' with ' + known if known else ''}")
        dims.update(zip(names, shape, strict=True))
    if min(dims["N"], dims["R"]) < 1 or dims["n_in"] + dims["n_out"] == 0:
        sizes = ", ".join(f"{d} = {dims[d]}" for d in ("N", "R", "n_in", "n_out"))
        _fail(source, f"{sizes}; a network needs N >= 1 neurons, rank R >= 1, and an input or an output")
    return dims


def _finite(source: str, tensors: dict) -> dict[str, np.ndarray]:
    """The tensors as float64 arrays, each checked finite."""
    out = {}
    for key, value in tensors.items():
        out[key] = value.astype(np.float64)
        if not np.all(np.isfinite(out[key])):
            _fail(source, f"{key}: holds NaN or Inf; every value must be finite")
    return out


def _zero_start(source: str, h0: np.ndarray, name: str) -> None:
    if np.any(h0 != 0):
        _fail(
            source,
            f"{name} is not zero (max |h0| = {np.abs(h0).max():.3g}); overlapflow's networks start at h = 0, "
            "so this network cannot be converted exactly",
        )


def _from_low_rank(source: str, t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    _zero_start(source, t["h0"], "h0")
    M = (t["wi"] * t["si"][:, None]).T
    theta = np.concatenate([M, t["m"], t["n"], t["wo"] * t["so"][None, :]], axis=1)
    return theta, np.zeros(theta.shape[0], dtype=np.int64)


def _from_supports(source: str, t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    G, S = t["gaussian_basis"], t["supports"]
    if not np.all((S == 0) | (S == 1)):
        _fail(source, "supports: values other than 0 and 1; row k must mark the neurons of population k with 1")
    count = S.sum(axis=0)
    if np.any(count > 1):
        _fail(source, f"supports: neurons {np.flatnonzero(count > 1)[:5].tolist()} lie in several populations")

    def rows(weights, biases=None):  # (c, K, b) -> (c, N): sum_k S[k] (weights[:, k] @ G + biases[:, k])
        x = np.einsum("ckb,bn,kn->cn", weights, G, S, optimize=True)
        return x if biases is None else x + biases @ S

    _zero_start(source, rows(t["h0_weights"][None])[0], "the initial state h0 (from h0_weights)")
    N = G.shape[1]
    scale = math.sqrt(N)
    theta = np.concatenate(
        [
            rows(t["wi_weights"], t["wi_biases"]).T,
            rows(t["m_weights"], t["m_biases"]).T * scale,
            rows(t["n_weights"], t["n_biases"]).T * scale,
            rows(t["wo_weights"]).T * N,
        ],
        axis=1,
    )
    labels = np.where(count == 1, S.argmax(axis=0), S.shape[0]).astype(np.int64)
    return theta, labels


def load_low_rank_rnns(
    path: str | Path, alpha: float = 0.2, tau: float = 1.0, noise_std: float = 0.05
) -> ImportedNetwork:
    """Read a ``low_rank_rnns`` ``LowRankRNN`` or ``SupportLowRankRNN`` state_dict (.pt, either torch
    format) as an overlapflow network (conversion in the module docstring; exact: the outputs agree to
    round-off). torch is not needed, and nothing in the file is run.

    Args:
        path: the file written by ``torch.save(net.state_dict(), path)``.
        alpha: their dt/tau (not saved in the file); 0.2 is the lab's 20 ms / 100 ms.
        tau: overlapflow's time constant; the network gets ``dt = alpha * tau`` (time in units of tau by
            default; ``tau=100`` gives milliseconds).
        noise_std: their noise per step (not saved; 0.05 is the lab's training value), kept on the result.

    Returns:
        :class:`ImportedNetwork` (``.rnn``, ``.theta`` (N, P) float64, ``.labels`` (N,), ...).

    Raises:
        overlapflow.torchfile.TorchFileError: the file is not a readable torch state_dict (one line).
        NetworkFileError: it holds no convertible network: another model (FullRankRNN), missing or
            unexpected keys, wrong shapes, NaN or Inf, bad supports, a non-zero h0 (one line, naming the key).
        ValueError: alpha, tau or noise_std out of range.
    """
    for name, value, positive in (("alpha", alpha, True), ("tau", tau, True), ("noise_std", noise_std, False)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or value < 0 or (positive and value == 0):
            raise ValueError(f"{name} = {value!r}: must be a finite number {'> 0' if positive else '>= 0'}")
    state = read_state_dict(path)
    source = str(path)
    tensors = {k: v for k, v in state.tensors.items() if k not in IGNORED_KEYS}
    if "gaussian_basis" in tensors:
        model, shapes, convert = "SupportLowRankRNN", SUPPORT_SHAPES, _from_supports
    elif "m" in tensors or "n" in tensors:
        model, shapes, convert = "LowRankRNN", LOW_RANK_SHAPES, _from_low_rank
    elif "wrec" in tensors:
        _fail(
            source,
            "a FullRankRNN state_dict (key wrec); only low-rank networks (LowRankRNN, SupportLowRankRNN) are read",
        )
    else:
        _fail(
            source,
            f"not a low_rank_rnns state_dict: keys {list(tensors)[:8]}; expected those of LowRankRNN "
            f"{list(LOW_RANK_SHAPES)} or SupportLowRankRNN {list(SUPPORT_SHAPES)}",
        )
    _check_keys(source, tensors, shapes, model)
    dims = _dims(source, tensors, shapes)
    theta, labels = convert(source, _finite(source, tensors))
    rnn = LowRankRNN(
        rank=dims["R"], n_in=dims["n_in"], n_out=dims["n_out"], phi="tanh", dt=alpha * tau, tau=tau, readout="after"
    )
    return ImportedNetwork(rnn, theta, labels, model, float(noise_std), source, state.format)


def save_low_rank_rnns(path: str | Path, rnn: LowRankRNN, theta: Float[ArrayLike, "N P"]) -> None:
    """Write an overlapflow network as a ``low_rank_rnns`` ``LowRankRNN`` state_dict (torch zip format,
    float32 tensors, written atomically): wi = M^T, si = 1, m = U, n = V, wo = Z, so = 1, h0 = 0.

    Their ``LowRankRNN(n_in, N, n_out, noise_std, alpha=rnn.dt / rnn.tau, rank=rnn.rank)`` then loads it
    with ``load_state_dict(torch.load(path))`` and runs the same network; :func:`load_low_rank_rnns` reads it back.

    Raises:
        ValueError: a network their class cannot run (phi other than tanh, readout "before"), or theta
            not (N, P) and finite.
    """
    if rnn.nonlinearity.name != "tanh" or rnn.readout != "after":
        raise ValueError(
            f"rnn: phi {rnn.nonlinearity.name!r}, readout {rnn.readout!r}; low_rank_rnns' LowRankRNN runs "
            "phi 'tanh' with readout 'after'"
        )
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 2 or theta.shape[1] != rnn.n_vectors or theta.shape[0] < 1:
        raise ValueError(f"theta: shape {theta.shape}; must be (N, P) with P = {rnn.n_vectors}")
    if not np.all(np.isfinite(theta)):
        raise ValueError("theta: contains NaN or Inf; must be finite")
    sl, N = rnn.slices, theta.shape[0]
    tensors = {
        "wi": theta[:, sl["M"]].T,
        "si": np.ones(rnn.n_in),
        "m": theta[:, sl["U"]],
        "n": theta[:, sl["V"]],
        "wo": theta[:, sl["Z"]],
        "so": np.ones(rnn.n_out),
        "h0": np.zeros(N),
    }
    write_state_dict(path, {k: v.astype(np.float32) for k, v in tensors.items()})
