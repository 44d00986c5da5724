"""PyTorch ``state_dict`` files (``torch.save`` of names -> tensors), read and written without torch.

A state_dict is an ordered mapping ``name -> tensor``; here every tensor is a numpy array. Two file
formats exist, and both are read:

- **zip** (torch >= 1.6, the default): an uncompressed zip archive whose records lie under one
  folder ``<archive>/``: ``data.pkl`` (the pickle), ``data/<key>`` (the raw bytes of storage
  ``key``), ``byteorder`` (``little`` or ``big``; little when absent) and ``version``.
- **legacy** (``_use_new_zipfile_serialization=False``): five things in a row: the pickled magic
  number 0x1950a86a20f9469cfc6c, the protocol version 1001, a dict of system facts
  (``little_endian``), the pickle itself, the list of storage keys; then per key, in that order,
  the element count (int64) and the raw bytes.

In both, a tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, hooks)`` and its storage as the persistent id ``("storage", torch.<T>Storage, key,
location, numel[, view])``: element i of the tensor (multi-index i) is storage element
offset + sum_d i_d stride_d.

Reading never runs code from the file. The unpickler resolves only the globals that torch's own
``weights_only`` loading needs for a plain state_dict: ``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2``, ``torch._utils._rebuild_parameter`` and the ``torch.*Storage``
types of :data:`STORAGE_DTYPES`; any other global is refused (:class:`TorchFileError`, one line
naming it) before it is looked up.

Writing (:func:`write_state_dict`) produces the zip format as ``torch.save`` does (protocol-2
pickle, one storage per tensor, records aligned to 64 bytes, little-endian), which
``torch.load(..., weights_only=True)`` reads.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .files import atomic_write

#: torch storage type -> numpy dtype of its elements (byte order set by the file)
STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("f8"),
    "FloatStorage": np.dtype("f4"),
    "HalfStorage": np.dtype("f2"),
    "LongStorage": np.dtype("i8"),
    "IntStorage": np.dtype("i4"),
    "ShortStorage": np.dtype("i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
#: the legacy format's magic number and protocol version
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
#: record alignment of the zip format (torch's default ``storage_alignment``)
ALIGNMENT = 64
_ALLOWED = "only tensors, storages and ordered dicts are read"


class TorchFileError(ValueError):
    """A file that is not a readable torch state_dict; the message is one line starting with the path."""


@dataclasses.dataclass(frozen=True, eq=False)
class StateDict:
    """The tensors of a state_dict file, in the file's order, and the file's format.

    Attributes:
        tensors: name -> numpy array (native byte order, the stored dtype, C-contiguous copy).
        format: ``"zip"`` or ``"legacy"``.
    """

    tensors: dict[str, np.ndarray]
    format: str


# ---------------------------------------------------------------------------------------- reading
# What the unpickler hands to the file's pickle is a tuple (immutable), a builtin type or a function
# made afresh for this load, so no BUILD opcode of a file can change state that outlives it.
class _StorageType(NamedTuple):
    name: str


class _Storage(NamedTuple):
    key: str
    kind: _StorageType
    numel: int


class _TensorRef(NamedTuple):
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_):
    """(storage, offset, size, stride, requires_grad, hooks[, metadata]) -> a reference to the elements."""
    size, stride = tuple(size), tuple(stride)
    numbers = (storage_offset, *size, *stride)
    if not isinstance(storage, _Storage) or not all(isinstance(v, int) and v >= 0 for v in numbers):
        raise ValueError("a tensor with a malformed storage, offset, size or stride")
    if len(size) != len(stride) or math.prod(size) > max(storage.numel, 1):
        raise ValueError(f"a tensor of size {size} and stride {stride} on a storage of {storage.numel} elements")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_):
    """(tensor, requires_grad, hooks) -> the tensor."""
    return data


_REBUILDERS = {"_rebuild_tensor_v2": _rebuild_tensor_v2, "_rebuild_parameter": _rebuild_parameter}


class _Unpickler(pickle.Unpickler):
    """Resolves collections.OrderedDict, torch._utils._rebuild_tensor_v2 and _rebuild_parameter, and the
    torch storage types of :data:`STORAGE_DTYPES`, nothing else; storages become :class:`_Storage`
    records in ``storages`` (key -> storage), their bytes read after the pickle."""

    def __init__(self, file, source: str, storages: dict[str, _Storage]):
        super().__init__(file)
        self.source = source
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in _REBUILDERS:
            rebuild = _REBUILDERS[name]
            return lambda *args: rebuild(*args)  # a fresh function for this load
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise TorchFileError(f"{self.source}: refuses to load the global {module}.{name}; {_ALLOWED}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise TorchFileError(f"{self.source}: unknown persistent id {str(pid)[:60]}; {_ALLOWED}")
        _, kind, key, _location, numel = pid[:5]
        if not isinstance(kind, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise TorchFileError(f"{self.source}: malformed storage id {str(pid)[:60]}")
        if len(pid) == 6 and pid[5] is not None:
            raise TorchFileError(f"{self.source}: storage views (files of torch < 1.0) are not read")
        storage = self.storages.setdefault(str(key), _Storage(str(key), kind, numel))
        if storage.kind != kind or storage.numel != numel:
            raise TorchFileError(f"{self.source}: storage {key!r} is declared twice with different types or sizes")
        return storage


def _unpickle(file, source: str, storages: dict[str, _Storage], foreign: str = "its pickle does not load"):
    """One pickle from ``file``; a pickle that fails to load (not a refused global) gives one line
    ``source: not a torch file: <foreign> (<error>)``."""
    try:
        return _Unpickler(file, source, storages).load()
    except TorchFileError:
        raise
    except Exception as error:  # a damaged or foreign pickle: whatever the unpickler tripped on
        raise TorchFileError(f"{source}: not a torch file: {foreign} ({type(error).__name__}: {error})") from None


def _elements(storage: _Storage, raw: bytes, order: str, source: str) -> np.ndarray:
    """The storage's elements (numel,) from its raw bytes in byte order ``order`` ("<" or ">")."""
    dtype = STORAGE_DTYPES[storage.kind.name].newbyteorder(order)
    if len(raw) != storage.numel * dtype.itemsize:
        raise TorchFileError(
            f"{source}: storage {storage.key!r} holds {len(raw)} bytes; its {storage.numel} elements of "
            f"{storage.kind.name} need {storage.numel * dtype.itemsize}"
        )
    return np.frombuffer(raw, dtype=dtype)


def _materialise(name: str, ref: _TensorRef, data: np.ndarray, source: str) -> np.ndarray:
    """The tensor's elements as a C-contiguous array in native byte order (numpy checks the bounds)."""
    try:
        view = np.ndarray(
            shape=ref.size,
            dtype=data.dtype,
            buffer=data,
            offset=ref.offset * data.itemsize,
            strides=tuple(s * data.itemsize for s in ref.stride),
        )
    except (TypeError, ValueError) as error:
        raise TorchFileError(
            f"{source}: tensor {name!r} (offset {ref.offset}, size {ref.size}, stride {ref.stride}) does not "
            f"fit its storage of {ref.storage.numel} elements ({error})"
        ) from None
    return np.array(view, dtype=data.dtype.newbyteorder("="), order="C")


def _state_dict(obj, source: str) -> dict[str, _TensorRef]:
    if not isinstance(obj, dict):
        raise TorchFileError(
            f"{source}: holds {type(obj).__name__!r}, not a state_dict (a mapping of names to tensors)"
        )
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TorchFileError(f"{source}: not a state_dict: key {str(key)[:40]!r} is not a string")
        if not isinstance(value, _TensorRef):
            raise TorchFileError(
                f"{source}: not a state_dict: key {key!r} holds {type(value).__name__!r}; every value must be a tensor"
            )
    return obj


def _read_zip(archive: zipfile.ZipFile, source: str) -> dict[str, np.ndarray]:
    pickles = [name for name in archive.namelist() if name.count("/") == 1 and name.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise TorchFileError(f"{source}: not a torch file: a zip archive without one <name>/data.pkl record")
    prefix = pickles[0][: -len("data.pkl")]
    order = "little"
    if f"{prefix}byteorder" in archive.namelist():
        order = archive.read(f"{prefix}byteorder").decode("ascii", "replace")
        if order not in ("little", "big"):
            raise TorchFileError(f"{source}: byteorder record {order[:20]!r}; must be 'little' or 'big'")
    storages: dict[str, _Storage] = {}
    refs = _state_dict(_unpickle(io.BytesIO(archive.read(pickles[0])), source, storages), source)
    data = {}
    for key, storage in storages.items():
        try:
            raw = archive.read(f"{prefix}data/{key}")
        except KeyError:
            raise TorchFileError(f"{source}: the record {prefix}data/{key} of storage {key!r} is missing") from None
        data[key] = _elements(storage, raw, "<" if order == "little" else ">", source)
    return {name: _materialise(name, ref, data[ref.storage.key], source) for name, ref in refs.items()}


def _read_legacy(raw: bytes, source: str) -> dict[str, np.ndarray]:
    stream, storages = io.BytesIO(raw), {}
    foreign = "neither a zip archive nor torch's legacy format"
    header = [_unpickle(stream, source, storages, foreign) for _ in range(3)]
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL or not isinstance(header[2], dict):
        raise TorchFileError(f"{source}: not a torch file: {foreign}")
    order = "<" if header[2].get("little_endian", True) else ">"
    refs = _state_dict(_unpickle(stream, source, storages), source)
    keys = _unpickle(stream, source, storages)
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
        raise TorchFileError(f"{source}: the list of storage keys does not match the storages of the tensors")
    data = {}
    for key in map(str, keys):
        storage = storages[key]
        count = stream.read(8)
        if len(count) != 8 or struct.unpack(f"{order}q", count)[0] != storage.numel:
            raise TorchFileError(f"{source}: storage {key!r}: element count missing or not {storage.numel}")
        size = storage.numel * STORAGE_DTYPES[storage.kind.name].itemsize
        data[key] = _elements(storage, stream.read(size), order, source)
    return {name: _materialise(name, ref, data[ref.storage.key], source) for name, ref in refs.items()}


def read_state_dict(path: str | Path) -> StateDict:
    """Read a torch state_dict file (zip or legacy format) without torch and without running its code.

    Returns:
        :class:`StateDict`: the tensors (name -> numpy array, in the file's order) and the format.

    Raises:
        TorchFileError: one line: not a file, not a torch file, a global other than tensors, storages
            and ordered dicts (named), not a mapping of names to tensors, or damaged storages.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise TorchFileError(f"{source}: {'not a file' if path.exists() else 'no such file'}")
    try:
        if not zipfile.is_zipfile(path):
            return StateDict(_read_legacy(path.read_bytes(), source), "legacy")
        with zipfile.ZipFile(path) as archive:
            return StateDict(_read_zip(archive, source), "zip")
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as error:  # what zipfile raises
        raise TorchFileError(f"{source}: a damaged zip archive ({error})") from None
    except OSError as error:
        raise TorchFileError(f"{source}: cannot be read ({error})") from None


# ---------------------------------------------------------------------------------------- writing
_STORAGE_OF = {dtype: name for name, dtype in STORAGE_DTYPES.items()}


def _op_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode("ascii")


def _op_str(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def _op_int(value: int) -> bytes:
    if 0 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def _op_tuple(values) -> bytes:
    return b"(" + b"".join(_op_int(int(v)) for v in values) + b"t"


def _pickle(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The protocol-2 pickle torch writes for an OrderedDict of contiguous tensors, storage i for the
    i-th tensor (opcodes: PROTO, GLOBAL, EMPTY_TUPLE, REDUCE, MARK, BINUNICODE, BININT, LONG1,
    TUPLE, BINPERSID, NEWFALSE, SETITEMS, STOP)."""
    out = [b"\x80\x02", _op_global("collections", "OrderedDict"), b")R("]
    for i, (name, a) in enumerate(arrays.items()):
        stride = [int(np.prod(a.shape[d + 1 :])) for d in range(a.ndim)]
        storage_id = (
            _op_str("storage")
            + _op_global("torch", _STORAGE_OF[a.dtype.newbyteorder("=")])
            + _op_str(str(i))
            + _op_str("cpu")
        )
        out += [
            _op_str(name),
            _op_global("torch._utils", "_rebuild_tensor_v2"),
            b"((" + storage_id + _op_int(a.size) + b"tQ",  # the storage's persistent id
            _op_int(0) + _op_tuple(a.shape) + _op_tuple(stride) + b"\x89",  # offset, size, stride, requires_grad
            _op_global("collections", "OrderedDict") + b")R",  # backward hooks: an empty OrderedDict
            b"tR",
        ]
    out.append(b"u.")
    return b"".join(out)


def _aligned(archive: zipfile.ZipFile, buffer: io.BytesIO, name: str, data: bytes) -> None:
    """Add a stored record whose data starts at a multiple of :data:`ALIGNMENT`, padding the local
    header's extra field as torch does (field id ``FB``)."""
    start = buffer.tell() + 30 + len(name.encode()) + 4  # local header, name, extra field header
    pad = -start % ALIGNMENT
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    archive.writestr(info, data, compress_type=zipfile.ZIP_STORED)


def write_state_dict(path: str | Path, tensors: Mapping[str, np.ndarray]) -> None:
    """Write name -> array as a torch state_dict file in the zip format (atomically).

    Arrays keep their dtype (one of :data:`STORAGE_DTYPES`' values) and are stored little-endian and
    contiguous; ``torch.load(path, weights_only=True)`` returns an OrderedDict of equal tensors.

    Raises:
        ValueError: a name that is not a string, or an array of a dtype torch files do not hold here.
    """
    arrays = {}
    for name, value in tensors.items():
        a = np.asarray(value)
        if not isinstance(name, str):
            raise ValueError(f"state_dict key {name!r}: must be a string")
        if a.dtype.newbyteorder("=") not in _STORAGE_OF:
            raise ValueError(f"state_dict[{name!r}]: dtype {a.dtype}; allowed: {sorted(map(str, _STORAGE_OF))}")
        arrays[name] = np.array(a, dtype=a.dtype.newbyteorder("<"), order="C")
    records = {
        "data.pkl": _pickle(arrays),
        ".format_version": b"1",
        ".storage_alignment": str(ALIGNMENT).encode(),
        "byteorder": b"little",
    }
    records |= {f"data/{i}": a.tobytes() for i, a in enumerate(arrays.values())}
    records["version"] = b"3"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in records.items():
            _aligned(archive, buffer, f"archive/{name}", data)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
