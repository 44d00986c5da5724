"""low_rank_rnns files: torch's two formats read without torch, the exact conversion of both model
classes (checked against their update rule written out here in numpy), refused globals, one line per
bad input, and the round trip of save_low_rank_rnns.

The torch files in tests/data/low_rank_rnns/ were written by torch itself from the numpy arrays kept in
arrays.npz (make_files.py there says how); no file of the lab's repositories is used.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import overlapflow as of
from overlapflow import torchfile
from overlapflow.interop import (
    LOW_RANK_SHAPES,
    ImportedNetwork,
    NetworkFileError,
    load_low_rank_rnns,
    save_low_rank_rnns,
)
from overlapflow.torchfile import LEGACY_MAGIC, TorchFileError, read_state_dict, write_state_dict

DATA = Path(__file__).resolve().parent / "data" / "low_rank_rnns"
ARRAYS = np.load(DATA / "arrays.npz")
ALPHA = 0.2


def arrays(group: str) -> dict[str, np.ndarray]:
    return {k.split("/", 1)[1]: ARRAYS[k] for k in ARRAYS.files if k.startswith(group + "/")}


# ------------------------------------------------------------------ their model, written out from its rules
def their_vectors(model: str, t: dict[str, np.ndarray]):
    """(wi (n_in, N), m (N, R), n (N, R), wo (N, n_out), h0 (N,), 1/N factor) of their model."""
    if model == "lowrank":
        return t["wi"] * t["si"][:, None], t["m"], t["n"], t["wo"] * t["so"], t["h0"], 1.0 / t["m"].shape[0]
    G, S = t["gaussian_basis"], t["supports"]

    def family(weights, biases):  # per population k: weights[:, k] @ G + biases[:, k] on its neurons
        x = np.zeros((weights.shape[0], G.shape[1]), dtype=G.dtype)
        for k in range(S.shape[0]):
            x += (weights[:, k] @ G + (0 if biases is None else biases[:, k : k + 1])) * S[k]
        return x

    h0 = family(t["h0_weights"][None], None)[0]
    wi = family(t["wi_weights"], t["wi_biases"])
    m, n = family(t["m_weights"], t["m_biases"]).T, family(t["n_weights"], t["n_biases"]).T
    return wi, m, n, family(t["wo_weights"], None).T, h0, 1.0


def their_forward(model, t, x, dtype, noise=None):
    """Their step h <- h + noise + alpha (-h + tanh(h) n m^T c + x wi), y = tanh(h) wo c, h from h0
    (c = 1/N for LowRankRNN, 1 for SupportLowRankRNN), all in ``dtype``."""
    t = {k: v.astype(dtype) for k, v in t.items()}
    wi, m, n, wo, h0, c = their_vectors(model, t)
    alpha, c, x = dtype(ALPHA), dtype(c), x.astype(dtype)
    h = np.broadcast_to(h0, (x.shape[0], h0.size))
    r, ys = np.tanh(h), []
    for i in range(x.shape[1]):
        h = h + (0 if noise is None else noise[i]) + alpha * (-h + r @ n @ m.T * c + x[:, i] @ wi)
        r = np.tanh(h)
        ys.append(r @ wo * c)
    return np.stack(ys, axis=1)


def inputs(n_in, B=3, T=30, seed=0):
    return np.random.default_rng(seed).normal(size=(B, T, n_in))


# ------------------------------------------------------------------ reading torch files
@pytest.mark.parametrize("name", ["lowrank_zip", "lowrank_legacy", "support_zip", "support_legacy", "dtypes_zip"])
def test_torch_written_files_read_exactly(name):
    group, fmt = name.split("_")
    state = read_state_dict(DATA / f"{name}.pt")
    expected = arrays(group)
    assert state.format == fmt
    assert list(state.tensors) == list(expected)
    for key, value in state.tensors.items():
        assert value.dtype == expected[key].dtype and value.shape == expected[key].shape, key
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
        assert value.flags.c_contiguous


def test_files_hold_views():
    """The lowrank files exercise offsets and strides: wi is a transposed view, m and n are two column
    blocks of one storage (7 tensors on 6 storages), and they read exactly (above)."""
    with zipfile.ZipFile(DATA / "lowrank_zip.pt") as z:
        assert sum("/data/" in name for name in z.namelist()) == 6


# ------------------------------------------------------------------ the conversion
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_low_rank_rnn_conversion(fmt):
    t = {k: v.astype(np.float64) for k, v in arrays("lowrank").items()}  # products of float32 values, exact
    net = load_low_rank_rnns(DATA / f"lowrank_{fmt}.pt", alpha=ALPHA, tau=100.0)
    assert isinstance(net, ImportedNetwork)
    assert (net.model, net.file_format, net.N, net.noise_std) == ("LowRankRNN", fmt, 16, 0.05)
    assert (net.rnn.rank, net.rnn.n_in, net.rnn.n_out, net.rnn.readout) == (2, 2, 1, "after")
    assert net.rnn.nonlinearity.name == "tanh" and net.rnn.dt == pytest.approx(20.0) and net.rnn.alpha == ALPHA
    sl = net.rnn.slices
    np.testing.assert_array_equal(net.theta[:, sl["M"]], (t["wi"] * t["si"][:, None]).T)
    np.testing.assert_array_equal(net.theta[:, sl["U"]], t["m"])
    np.testing.assert_array_equal(net.theta[:, sl["V"]], t["n"])
    np.testing.assert_array_equal(net.theta[:, sl["Z"]], t["wo"] * t["so"])
    np.testing.assert_array_equal(net.labels, np.zeros(16))
    assert net.theta.dtype == np.float64 and net.labels.dtype == np.int64


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_support_conversion_labels_and_mixture(fmt):
    net = load_low_rank_rnns(DATA / f"support_{fmt}.pt")
    assert (net.model, net.N, net.rnn.rank, net.rnn.n_in, net.rnn.n_out) == ("SupportLowRankRNN", 20, 1, 2, 1)
    # floor(0.6 N) = 12 and floor(0.35 N) = 7 neurons; the last one lies in no support: population 2
    np.testing.assert_array_equal(net.labels, [0] * 12 + [1] * 7 + [2])
    np.testing.assert_array_equal(net.theta[19], np.zeros(net.rnn.n_vectors))
    mixture = net.mixture()
    np.testing.assert_allclose(mixture.weights, [12 / 20, 7 / 20, 1 / 20], rtol=1e-15)
    wi, m, n, wo, _, _ = their_vectors("support", {k: v.astype(np.float64) for k, v in arrays("support").items()})
    sl = net.rnn.slices
    np.testing.assert_allclose(net.theta[:, sl["U"]], m * np.sqrt(20), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(net.theta[:, sl["V"]], n * np.sqrt(20), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(net.theta[:, sl["Z"]], wo * 20, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(net.theta[:, sl["M"]], wi.T, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("model", ["lowrank", "support"])
def test_outputs_match_their_update_rule(model):
    """overlapflow's network_forward on the converted network against their rule: 1e-12 in float64,
    1e-6 in float32 (outputs of order 1)."""
    net = load_low_rank_rnns(DATA / f"{model}_zip.pt", alpha=ALPHA)
    x = inputs(net.rnn.n_in)
    ref64 = their_forward(model, arrays(model), x, np.float64)
    ref32 = their_forward(model, arrays(model), x, np.float32)
    ours64 = np.asarray(of.network_forward(net.rnn, jnp.asarray(net.theta), x))
    ours32 = np.asarray(of.network_forward(net.rnn, jnp.asarray(net.theta, jnp.float32), x.astype(np.float32)))
    assert ours32.dtype == np.float32
    assert 0.05 < np.abs(ref64).max() < 20  # a non-trivial output
    assert np.abs(ours64 - ref64).max() < 1e-12
    assert np.abs(ours32 - ref32).max() < 1e-6 * max(1.0, np.abs(ref64).max())


def test_noise_convention_matches_noise_response():
    """Their h <- h + noise_std xi + alpha (...) is noise_response's neuron-space noise (not scaled by alpha)."""
    net = load_low_rank_rnns(DATA / "lowrank_zip.pt", alpha=ALPHA, noise_std=0.3)
    x, key = inputs(2, T=20), jax.random.key(7)
    draws = [net.noise_std * np.asarray(jax.random.normal(jax.random.fold_in(key, t), (3, 16))) for t in range(20)]
    ref = their_forward("lowrank", arrays("lowrank"), x, np.float64, noise=draws)
    ours = np.asarray(of.phenomena.noise_response(net.rnn, jnp.asarray(net.theta), x, net.noise_std, key))
    assert np.abs(ours - ref).max() < 1e-12
    assert np.abs(ref - their_forward("lowrank", arrays("lowrank"), x, np.float64)).max() > 1e-2  # noise matters


def test_overlaps_of_an_imported_network():
    net = load_low_rank_rnns(DATA / "lowrank_legacy.pt")
    S = of.Overlaps.from_params(net.rnn, net.theta)
    np.testing.assert_allclose(S.matrix, net.theta.T @ net.theta / net.N, rtol=1e-14)


# ------------------------------------------------------------------ save, then load
def test_round_trip_and_layout(tmp_path):
    rnn = of.LowRankRNN(rank=2, n_in=3, n_out=2, phi="tanh", dt=0.1, tau=0.5)
    theta = np.asarray(rnn.init(jax.random.key(3), N=40, dtype=jnp.float64)) * 1.7
    path = tmp_path / "net.pt"
    save_low_rank_rnns(path, rnn, theta)
    state = read_state_dict(path)
    assert state.format == "zip" and list(state.tensors) == list(LOW_RANK_SHAPES)
    assert all(v.dtype == np.float32 for v in state.tensors.values())
    np.testing.assert_array_equal(state.tensors["si"], np.ones(3))
    np.testing.assert_array_equal(state.tensors["h0"], np.zeros(40))
    net = load_low_rank_rnns(path, alpha=rnn.alpha, tau=rnn.tau)
    assert net.rnn == rnn
    np.testing.assert_array_equal(net.theta, theta.astype(np.float32).astype(np.float64))  # float32 round-off only
    assert np.abs(net.theta - theta).max() < 1e-6 * np.abs(theta).max()
    # torch's layout: the same records as a torch-written file, each record's data aligned to 64 bytes
    with zipfile.ZipFile(path) as ours, zipfile.ZipFile(DATA / "lowrank_zip.pt") as theirs:
        records = [n.split("/", 1)[1] for n in ours.namelist()]
        assert records == ["data.pkl", ".format_version", ".storage_alignment", "byteorder"] + [
            f"data/{i}" for i in range(7)
        ] + ["version"]
        torch_records = {n.split("/", 1)[1] for n in theirs.namelist() if "/data/" not in n}
        assert {r for r in records if not r.startswith("data/")} == torch_records - {".data/serialization_id"}
        for file, z in ((path, ours), (DATA / "lowrank_zip.pt", theirs)):
            raw = file.read_bytes()
            for info in z.infolist():
                assert info.compress_type == zipfile.ZIP_STORED
                if "/data/" in info.filename:  # a storage's bytes start at a multiple of 64
                    name_length, extra_length = struct.unpack(
                        "<HH", raw[info.header_offset + 26 : info.header_offset + 30]
                    )
                    assert (info.header_offset + 30 + name_length + extra_length) % 64 == 0


def test_torch_reads_what_we_write(tmp_path):
    """Runs where torch is installed (it is no dependency): torch.load with weights_only gives the tensors."""
    torch = pytest.importorskip("torch")
    tensors = {k: v for k, v in arrays("dtypes").items()}
    write_state_dict(tmp_path / "d.pt", tensors)
    loaded = torch.load(tmp_path / "d.pt", weights_only=True)
    assert list(loaded) == list(tensors)
    for key, value in tensors.items():
        np.testing.assert_array_equal(loaded[key].numpy(), value)


def test_write_then_read_every_dtype(tmp_path):
    tensors = arrays("dtypes") | {
        "big_endian": np.arange(3, dtype=">i4"),
        "fortran": np.asfortranarray(np.eye(3)[:, :2]),
    }
    write_state_dict(tmp_path / "d.pt", tensors)
    back = read_state_dict(tmp_path / "d.pt").tensors
    assert list(back) == list(tensors)
    for key, value in tensors.items():
        np.testing.assert_array_equal(back[key], value)
        assert back[key].dtype == value.dtype.newbyteorder("=") and back[key].shape == value.shape
    with pytest.raises(ValueError, match=r"state_dict\['c'\]: dtype complex128"):
        write_state_dict(tmp_path / "e.pt", {"c": np.zeros(2, dtype=complex)})


# ------------------------------------------------------------------ refused globals
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _zip_with_pickle(path, data: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/version", b"3")


def _legacy_with_pickle(path, data: bytes):
    header = b"".join(pickle.dumps(v, protocol=2) for v in (LEGACY_MAGIC, 1001, {"little_endian": True}))
    path.write_bytes(header + data + pickle.dumps([], protocol=2))


@pytest.mark.parametrize("where", ["raw", "zip", "legacy"])
def test_foreign_global_refused_and_not_run(tmp_path, where):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"m": _Evil(marker)}, protocol=2)
    path = tmp_path / "model.pt"
    {"raw": lambda p, d: p.write_bytes(d), "zip": _zip_with_pickle, "legacy": _legacy_with_pickle}[where](path, payload)
    with pytest.raises(TorchFileError) as error:
        read_state_dict(path)
    global_name = f"{os.system.__module__}.system"
    assert str(error.value) == (
        f"{path}: refuses to load the global {global_name}; only tensors, storages and ordered dicts are read"
    )
    assert not marker.exists()


def test_unknown_module_refused_without_import(tmp_path):
    path = tmp_path / "m.pt"
    _zip_with_pickle(path, b"\x80\x02cno_such_module_xyz\nrun\n)R.")
    with pytest.raises(TorchFileError, match=r"refuses to load the global no_such_module_xyz\.run;"):
        read_state_dict(path)


def test_a_file_cannot_alter_the_reader(tmp_path):
    """BUILD on what the reader hands out fails (a storage type) or changes only this load's copy (a
    rebuild function): the module's objects stay as they are, and the next file reads as before."""
    path = tmp_path / "b.pt"
    name_state = b"}X\x04\x00\x00\x00nameX\r\x00\x00\x00DoubleStorages"  # {"name": "DoubleStorage"}
    _zip_with_pickle(path, b"\x80\x02ctorch\nFloatStorage\n" + name_state + b"b.")
    with pytest.raises(TorchFileError, match="not a torch file: its pickle does not load"):
        read_state_dict(path)
    slot_state = b"(N}X\x05\x00\x00\x00pwnedK\x01stb"  # (None, {"pwned": 1}): setattr(func, "pwned", 1)
    _zip_with_pickle(path, b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n" + slot_state + b".")
    with pytest.raises(TorchFileError, match="holds 'function', not a state_dict"):
        read_state_dict(path)
    assert not hasattr(torchfile._rebuild_tensor_v2, "pwned")
    np.testing.assert_array_equal(read_state_dict(DATA / "lowrank_zip.pt").tensors["m"], arrays("lowrank")["m"])


# ------------------------------------------------------------------ bad input: one line each
def _low(**changes):
    t = {k: v.copy() for k, v in arrays("lowrank").items()}
    t.update(changes)
    return {k: v for k, v in t.items() if v is not None}


def _support(**changes):
    t = {k: v.copy() for k, v in arrays("support").items()}
    t.update(changes)
    return t


def _nan_m():
    m = arrays("lowrank")["m"].copy()
    m[3, 1] = np.nan
    return _low(m=m)


def _overlapping_supports():
    S = arrays("support")["supports"].copy()
    S[1, 5] = 1
    return _support(supports=S)


BAD_STATE_DICTS = {
    "missing keys": (_low(so=None, h0=None), r"a LowRankRNN state_dict without the keys \['so', 'h0'\]"),
    "unexpected key": (_low(bias=np.zeros(3, np.float32)), r"unexpected keys \['bias'\] for a LowRankRNN"),
    "wrong shape": (_low(n=np.zeros((16, 3), np.float32)), r"n: shape \(16, 3\); must be \(N, R\) with N = 16, R = 2"),
    "wrong ndim": (_low(si=np.zeros((2, 1), np.float32)), r"si: shape \(2, 1\); must be \(n_in,\) with n_in = 2"),
    "rank 0": (
        _low(m=np.zeros((16, 0), np.float32), n=np.zeros((16, 0), np.float32)),
        r"N = 16, R = 0, n_in = 2, n_out = 1; a network needs N >= 1 neurons, rank R >= 1",
    ),
    "NaN": (_nan_m(), r"m: holds NaN or Inf; every value must be finite"),
    "h0": (_low(h0=np.full(16, 0.5, np.float32)), r"h0 is not zero \(max \|h0\| = 0.5\); overlapflow's networks start"),
    "support h0": (_support(h0_weights=np.ones((2, 5), np.float32)), r"the initial state h0 \(from h0_weights\)"),
    "support shape": (_support(m_biases=np.zeros((2, 2), np.float32)), r"m_biases: shape \(2, 2\); must be \(R, K\)"),
    "support values": (_support(supports=arrays("support")["supports"] * 2), r"supports: values other than 0 and 1"),
    "overlapping": (_overlapping_supports(), r"supports: neurons \[5\] lie in several populations"),
    "full rank": ({"wrec": np.zeros((4, 4), np.float32), "wi": np.zeros((1, 4), np.float32)}, r"a FullRankRNN"),
    "foreign dict": ({"weight": np.zeros(3, np.float32)}, r"not a low_rank_rnns state_dict: keys \['weight'\]"),
}


@pytest.mark.parametrize("case", list(BAD_STATE_DICTS))
def test_bad_state_dict_one_line(tmp_path, case):
    tensors, message = BAD_STATE_DICTS[case]
    path = tmp_path / "bad.pt"
    write_state_dict(path, tensors)
    with pytest.raises(NetworkFileError, match=rf"^{path}: {message}") as error:
        load_low_rank_rnns(path)
    assert "\n" not in str(error.value)


def test_rec_noise_is_ignored(tmp_path):
    write_state_dict(tmp_path / "n.pt", _low(rec_noise=np.ones(16, np.float32)))
    np.testing.assert_array_equal(load_low_rank_rnns(tmp_path / "n.pt").theta[:, 2:4], arrays("lowrank")["m"])


def _short_storage(path):
    write_state_dict(path, _low())
    records = {}
    with zipfile.ZipFile(path) as z:
        records = {n: z.read(n) for n in z.namelist()}
    records["archive/data/2"] = records["archive/data/2"][:-4]
    with zipfile.ZipFile(path, "w") as z:
        for name, data in records.items():
            z.writestr(name, data)


BAD_FILES = {
    "no such file": (lambda p: None, r"no such file"),
    "a folder": (lambda p: p.mkdir(), r"not a file"),
    "text": (lambda p: p.write_text("hello\n"), r"not a torch file: neither a zip archive nor torch's legacy format"),
    "empty": (lambda p: p.write_bytes(b""), r"not a torch file: neither a zip archive nor torch's legacy format"),
    "plain zip": (
        lambda p: zipfile.ZipFile(p, "w").close(),
        r"not a torch file: a zip archive without one <name>/data.pkl record",
    ),
    "a list": (lambda p: _zip_with_pickle(p, pickle.dumps([1, 2], protocol=2)), r"holds 'list', not a state_dict"),
    "a checkpoint": (
        lambda p: _zip_with_pickle(p, pickle.dumps({"epoch": 3}, protocol=2)),
        r"not a state_dict: key 'epoch' holds 'int'; every value must be a tensor",
    ),
    "short storage": (_short_storage, r"storage '2' holds 124 bytes; its 32 elements of FloatStorage need 128"),
    "missing storage": (
        lambda p: _zip_with_pickle(p, _torch_pickle()),
        r"the record archive/data/0 of storage '0' is missing",
    ),
    "legacy truncated": (
        lambda p: p.write_bytes((DATA / "lowrank_legacy.pt").read_bytes()[:-2]),
        r"storage '\d+' holds 2 bytes; its 1 elements of FloatStorage need 4",
    ),
}


def _torch_pickle() -> bytes:
    """The data.pkl of a torch-written file (its storages left behind)."""
    with zipfile.ZipFile(DATA / "lowrank_zip.pt") as z:
        return z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_one_line(tmp_path, case):
    make, message = BAD_FILES[case]
    path = tmp_path / "model.pt"
    make(path)
    with pytest.raises(TorchFileError, match=rf"^{path}: {message}") as error:
        load_low_rank_rnns(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 0.0}, r"alpha = 0.0: must be a finite number > 0"),
        ({"tau": float("nan")}, r"tau = nan: must be a finite number > 0"),
        ({"noise_std": -1.0}, r"noise_std = -1.0: must be a finite number >= 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_low_rank_rnns(DATA / "lowrank_zip.pt", **kwargs)


def test_save_refuses_what_their_class_cannot_run(tmp_path):
    linear = of.LowRankRNN(phi="linear")
    with pytest.raises(ValueError, match=r"phi 'linear', readout 'after'; low_rank_rnns' LowRankRNN runs phi 'tanh'"):
        save_low_rank_rnns(tmp_path / "x.pt", linear, np.zeros((10, 4)))
    rnn = of.LowRankRNN(phi="tanh")
    with pytest.raises(ValueError, match=r"theta: shape \(10, 3\); must be \(N, P\) with P = 4"):
        save_low_rank_rnns(tmp_path / "x.pt", rnn, np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"theta: contains NaN or Inf"):
        save_low_rank_rnns(tmp_path / "x.pt", rnn, np.full((10, 4), np.inf))
    assert not (tmp_path / "x.pt").exists()
