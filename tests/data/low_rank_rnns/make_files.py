"""Writes the torch files of this folder with torch itself (torch is no dependency of overlapflow).

Every tensor is made here from numpy random numbers (no file of the low_rank_rnns repositories is
used); ``arrays.npz`` keeps those arrays, the tests compare what overlapflow reads with them.
Made with torch 2.13.0 (CPU) and numpy 2.4, from the repository root:

    python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    /tmp/torchenv/bin/python tests/data/low_rank_rnns/make_files.py
"""

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
rng = np.random.default_rng(2022)


def normal(*shape):
    return rng.normal(size=shape).astype(np.float32)


# A LowRankRNN: N = 16 neurons, rank 2, 2 inputs, 1 output (their key names and shapes).
N, R = 16, 2
low = {
    "wi": normal(2, N),
    "si": np.array([0.5, 2.0], dtype=np.float32),
    "m": normal(N, R),
    "n": normal(N, R) * 3,
    "wo": normal(N, 1) * 4,
    "so": np.array([1.5], dtype=np.float32),
    "h0": np.zeros(N, dtype=np.float32),
}
# A SupportLowRankRNN: N = 20, K = 2 populations of floor(0.6 N) = 12 and floor(0.35 N) = 7 neurons
# (the last neuron in none), basis dimension 5, rank 1, 2 inputs, 1 output.
N, K, b = 20, 2, 5
supports = np.zeros((K, N), dtype=np.float32)
supports[0, :12] = 1
supports[1, 12:19] = 1
support = {
    "gaussian_basis": normal(b, N),
    "supports": supports,
    "weights": np.array([0.6, 0.35], dtype=np.float32),
    "wi_weights": normal(2, K, b),
    "m_weights": normal(1, K, b) / np.sqrt(N, dtype=np.float32),
    "n_weights": normal(1, K, b) * 3 / np.sqrt(N, dtype=np.float32),
    "wo_weights": normal(1, K, b) * 4 / N,
    "wi_biases": normal(2, K),
    "m_biases": normal(1, K),
    "n_biases": normal(1, K),
    "h0_weights": np.zeros((K, b), dtype=np.float32),
}
dtypes = {
    "float64": rng.normal(size=(2, 3)),
    "float16": rng.normal(size=4).astype(np.float16),
    "int64": np.array([-(2**40), 7]),
    "int32": np.array([[1, -2], [3, 4]], dtype=np.int32),
    "int16": np.array([-300], dtype=np.int16),
    "int8": np.array([-5, 5], dtype=np.int8),
    "uint8": np.array([0, 255], dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(2.5, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
}


def low_rank_tensors():
    """The LowRankRNN arrays as torch tensors sharing storage as trained ones may: wi a transposed
    (non-contiguous) view, m and n two column blocks of one (N, 2R) storage."""
    t = OrderedDict((k, torch.from_numpy(v)) for k, v in low.items())
    t["wi"] = torch.from_numpy(low["wi"].T.copy()).T
    both = torch.from_numpy(np.concatenate([low["m"], low["n"]], axis=1))
    t["m"], t["n"] = both[:, :R], both[:, R:]
    return t


for name, make in {
    "lowrank": low_rank_tensors,
    "support": lambda: OrderedDict((k, torch.from_numpy(v)) for k, v in support.items()),
}.items():
    torch.save(make(), HERE / f"{name}_zip.pt")
    torch.save(make(), HERE / f"{name}_legacy.pt", _use_new_zipfile_serialization=False)
torch.save(OrderedDict((k, torch.from_numpy(v)) for k, v in dtypes.items()), HERE / "dtypes_zip.pt")
np.savez(
    HERE / "arrays.npz",
    **{f"lowrank/{k}": v for k, v in low.items()},
    **{f"support/{k}": v for k, v in support.items()},
    **{f"dtypes/{k}": v for k, v in dtypes.items()},
)
