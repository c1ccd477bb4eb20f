# Restricted loading of untrusted pickles and torch.save files into numpy arrays, without torch.
# Only what is needed to rebuild numpy arrays and PyTorch tensors (plus lists, tuples, dicts and
# scalars) can be named by a pickle; any other global is refused before it is looked up, so a
# malicious file cannot run code. Used by calibench_convert.py; see README.md "Security model".
"""Restricted unpickling of numpy arrays and PyTorch tensors (no torch import).

Public entry points:
    load_pickle(path)          -> Python object (arrays as numpy arrays)
    load_torch(path)           -> Python object from a torch.save file (zip or legacy format)
    sniff(path)                -> "npz" | "npy" | "torch" | "torch-legacy" | "torch-tar" | "pickle" | None
All of them raise DecodeError (with the file name in the message) on bad or refused input.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np

REFUSAL_TAIL = "only arrays, tensors, lists, tuples and scalars are allowed"

# First bytes of files the converter recognises.
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
# torch's legacy (non-zip) format starts with pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2).
_TORCH_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PREFIX = pickle.dumps(_TORCH_LEGACY_MAGIC_NUMBER, protocol=2)
_TORCH_LEGACY_PROTOCOL = 1001


class DecodeError(Exception):
    """Bad or refused input; the message names the file and is meant for the user."""


class RefusedGlobal(DecodeError):
    """The pickle names a global outside the allowlist."""

    def __init__(self, module: str, name: str, source: str):
        self.module, self.name, self.source = module, name, source
        super().__init__(f"refusing to load {module}.{name} from {source}: {REFUSAL_TAIL}")


class _Refused(pickle.UnpicklingError):
    """Raised inside the unpickler (so it stops at once); converted to RefusedGlobal outside."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


# --------------------------------------------------------------------------- frozen stand-ins
#
# Everything that find_class hands back is either an immutable built-in type (list, set,
# collections.OrderedDict, ...) or one of the stand-ins below, which check their arguments before
# calling numpy. The stand-ins refuse attribute assignment and __setstate__, because
# the BUILD opcode would otherwise let a pickle modify them (setattr on a Python-level object).


class _Frozen:
    __slots__ = ()

    def __setattr__(self, key, value):
        raise pickle.UnpicklingError(f"refusing to modify {self!r}")

    def __delattr__(self, key):
        raise pickle.UnpicklingError(f"refusing to modify {self!r}")

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"refusing to set the state of {self!r}")

    def __reduce__(self):
        raise TypeError(f"{self!r} cannot be pickled")


class _Callable(_Frozen):
    """A named, checked replacement for a global function (or a class used as a function)."""

    __slots__ = ("_qualname", "_fn")

    def __init__(self, qualname, fn):
        object.__setattr__(self, "_qualname", qualname)
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args):
        return self._fn(*args)

    def __repr__(self):
        return f"<stand-in for {self._qualname}>"


class _Marker(_Frozen):
    """A global that may only be passed as an argument (e.g. numpy.ndarray to _reconstruct)."""

    __slots__ = ("_qualname",)

    def __init__(self, qualname):
        object.__setattr__(self, "_qualname", qualname)

    def __call__(self, *args):
        raise pickle.UnpicklingError(f"refusing to call {self._qualname}")

    def __repr__(self):
        return f"<marker {self._qualname}>"


def _bad(msg):
    raise pickle.UnpicklingError(msg)


# --------------------------------------------------------------------------- numpy stand-ins

try:  # numpy >= 2 keeps the internals in numpy._core; numpy 1.x in numpy.core
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray

_NDARRAY = _Marker("numpy.ndarray")


def _check_dtype(dtype, what):
    if not isinstance(dtype, np.dtype):
        _bad(f"{what}: expected a numpy dtype, got {type(dtype).__name__}")
    return dtype


def _np_reconstruct(subtype, shape, dtype):
    # ndarray.__reduce__ always writes _reconstruct(ndarray, (0,), b'b') followed by a BUILD
    # with the real shape and data; ndarray.__setstate__ checks the data length. Insisting on an
    # empty initial shape keeps a pickle from allocating a huge uninitialised array here.
    if subtype is not _NDARRAY:
        _bad("numpy _reconstruct: only plain numpy.ndarray can be rebuilt")
    if not isinstance(shape, tuple) or not all(isinstance(s, int) for s in shape) or (shape and np.prod(shape) != 0):
        _bad("numpy _reconstruct: unexpected initial shape")
    if not isinstance(dtype, (bytes, str, np.dtype)):
        _bad("numpy _reconstruct: unexpected dtype argument")
    return _np_multiarray._reconstruct(np.ndarray, shape, dtype)


def _np_frombuffer(buf, dtype, shape, order):
    # Protocol-5 pickles of arrays (numpy >= 1.16): numpy.core.numeric._frombuffer.
    if not isinstance(buf, (bytes, bytearray)):
        _bad("numpy _frombuffer: buffer is not bytes")
    _check_dtype(dtype, "numpy _frombuffer")
    if dtype.hasobject:
        _bad("numpy _frombuffer: object arrays are not allowed")
    if not isinstance(shape, tuple) or order not in ("C", "F"):
        _bad("numpy _frombuffer: bad shape or order")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _np_dtype(spec, align=False, copy=True):
    # numpy pickles dtypes as dtype(spec, align, copy=True) followed by BUILD (__setstate__).
    # Always make a fresh object: with copy=False numpy hands out its shared built-in dtype
    # instances, and a crafted BUILD must never reach those.
    return np.dtype(spec, bool(align), True)


def _np_scalar(dtype, *args):
    _check_dtype(dtype, "numpy scalar")
    return _np_multiarray.scalar(dtype, *args)


# ------------------------------------------------------------------- Python-2 / builtins stand-ins

_SAFE_TYPES = {  # immutable built-in types; calling them with any argument is harmless
    "builtins.list": list,
    "builtins.tuple": tuple,
    "builtins.dict": dict,
    "builtins.object": object,  # only as copyreg._reconstructor's base
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.complex": complex,
    "collections.OrderedDict": collections.OrderedDict,
}
# Types copyreg._reconstructor may instantiate (protocol 0/1 pickles of plain containers).
_RECONSTRUCTABLE = (dict, list, tuple, set, frozenset, collections.OrderedDict, int, float, complex, str, bytes)


def _bytearray(*args):
    # bytearray(str, 'latin-1') or bytearray(bytes) as pickles write it; bytearray(int) would
    # allocate memory of a size the file chooses.
    if not args:
        return bytearray()
    if isinstance(args[0], (bytes, bytearray)) and len(args) == 1:
        return bytearray(args[0])
    if isinstance(args[0], str) and len(args) == 2 and args[1] in ("latin-1", "latin1"):
        return bytearray(args[0], "latin-1")
    _bad("builtins.bytearray: unexpected arguments")


def _codecs_encode(obj, encoding="utf-8", errors="strict"):
    # Python 3 writes bytes under protocol < 3 as _codecs.encode(str, 'latin1').
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii") or errors != "strict":
        _bad("_codecs.encode: unexpected arguments")
    return obj.encode(encoding)


def _copyreg_reconstructor(cls, base, state):
    if not (isinstance(cls, type) and cls in _RECONSTRUCTABLE and (base is object or base in _RECONSTRUCTABLE)):
        _bad("copyreg._reconstructor: only plain containers can be rebuilt")
    if not issubclass(cls, base):
        _bad("copyreg._reconstructor: class does not derive from base")
    if base is object:
        return object.__new__(cls)
    obj = base.__new__(cls, state)
    if base.__init__ != object.__init__:
        base.__init__(obj, state)
    return obj


# --------------------------------------------------------------------------- torch stand-ins


class _TorchDType(_Frozen):
    """A torch element type: how its bytes read in numpy (little-endian) and what it becomes."""

    __slots__ = ("name", "raw", "itemsize")

    def __init__(self, name, raw):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "raw", np.dtype(raw))
        object.__setattr__(self, "itemsize", np.dtype(raw).itemsize)

    def to_numpy(self, raw_array):
        if self.name == "bfloat16":
            # bfloat16 is the upper half of a float32: widen exactly.
            return (raw_array.astype(np.uint32) << 16).view(np.float32)
        return raw_array

    def __repr__(self):
        return f"<torch.{self.name}>"


_TORCH_DTYPES = {
    name: _TorchDType(name, raw)
    for name, raw in [
        ("float32", "<f4"), ("float64", "<f8"), ("float16", "<f2"), ("bfloat16", "<u2"),
        ("int64", "<i8"), ("int32", "<i4"), ("int16", "<i2"), ("int8", "i1"), ("uint8", "u1"),
        ("bool", "?"), ("uint16", "<u2"), ("uint32", "<u4"), ("uint64", "<u8"),
    ]
}
# torch.float, torch.long, ... are aliases that pickle under their canonical names, but accept them.
_TORCH_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
                        "short": "int16"}

# Typed storage classes (torch.FloatStorage, ..., and torch.cuda.FloatStorage in legacy files).
_TORCH_STORAGE_TYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "UntypedStorage": "uint8",
}


class _StorageType(_Frozen):
    __slots__ = ("qualname", "dtype")

    def __init__(self, qualname, dtype):
        object.__setattr__(self, "qualname", qualname)
        object.__setattr__(self, "dtype", dtype)

    def __call__(self, *args):
        raise pickle.UnpicklingError(f"refusing to call {self.qualname}")

    def __repr__(self):
        return f"<{self.qualname}>"


class _Storage(_Frozen):
    """A torch storage: `numel` elements of `dtype`. `data` (raw numpy array) may arrive later
    (legacy format: the bytes follow the pickle). A legacy storage view points into a base."""

    __slots__ = ("dtype", "numel", "_data", "base", "offset")

    def __init__(self, dtype, numel, data=None, base=None, offset=0):
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "numel", numel)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "offset", offset)

    def set_data(self, data):
        object.__setattr__(self, "_data", data)

    def raw(self):
        if self.base is not None:
            return self.base.raw()[self.offset: self.offset + self.numel]
        if self._data is None:
            raise pickle.UnpicklingError("a storage's data is missing from the file")
        return self._data

    def __repr__(self):
        return f"<storage {self.dtype.name}[{self.numel}]>"


class _LazyTensor(_Frozen):
    """A tensor waiting for its storage's bytes; becomes a numpy array in _materialize."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype")

    def __init__(self, storage, offset, size, stride, dtype):
        for k, v in dict(storage=storage, offset=offset, size=size, stride=stride, dtype=dtype).items():
            object.__setattr__(self, k, v)

    def to_numpy(self):
        dtype = self.dtype
        raw = self.storage.raw()
        if self.storage.dtype is not dtype:
            # _rebuild_tensor_v3 reinterprets an untyped (byte) storage as `dtype`.
            if len(raw) % dtype.itemsize:
                raise pickle.UnpicklingError("storage size is not a multiple of the element size")
            raw = np.ascontiguousarray(raw).view(np.uint8).view(dtype.raw)
        size, stride, offset = self.size, self.stride, self.offset
        if any(s == 0 for s in size):
            return dtype.to_numpy(np.zeros(size, dtype=dtype.raw))
        # Highest element the view touches must lie inside the storage (torch strides are >= 0).
        last = offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= len(raw):
            raise pickle.UnpicklingError(
                f"tensor of size {tuple(size)} with offset {offset} and stride {tuple(stride)} "
                f"reaches beyond its storage of {len(raw)} elements")
        base = raw[offset:]
        view = np.lib.stride_tricks.as_strided(base, shape=tuple(size),
                                               strides=tuple(st * base.itemsize for st in stride), writeable=False)
        return dtype.to_numpy(np.array(view, dtype=view.dtype.newbyteorder("=")))  # copy, native order


def _int_tuple(x, what):
    if isinstance(x, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in x):
        return tuple(x)
    _bad(f"torch tensor: bad {what}")


def _make_tensor(storage, offset, size, stride, dtype=None):
    if not isinstance(storage, _Storage):
        _bad("torch tensor: first argument is not a storage")
    if not isinstance(offset, int) or offset < 0:
        _bad("torch tensor: bad storage offset")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        _bad("torch tensor: size and stride differ in length")
    if dtype is not None and not isinstance(dtype, _TorchDType):
        _bad("torch tensor: bad dtype")
    return _LazyTensor(storage, offset, size, stride, dtype or storage.dtype)


def _rebuild_tensor(storage, offset, size, stride):
    return _make_tensor(storage, offset, size, stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _make_tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    return _make_tensor(storage, offset, size, stride, dtype)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, _LazyTensor):
        _bad("torch parameter: data is not a tensor")
    return data


# --------------------------------------------------------------------------- the allowlist


def _build_allowlist():
    allow = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allow[(mod, "_reconstruct")] = _Callable(f"{mod}._reconstruct", _np_reconstruct)
        allow[(mod, "scalar")] = _Callable(f"{mod}.scalar", _np_scalar)
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allow[(mod, "_frombuffer")] = _Callable(f"{mod}._frombuffer", _np_frombuffer)
    allow[("numpy", "ndarray")] = _NDARRAY
    allow[("numpy", "dtype")] = _Callable("numpy.dtype", _np_dtype)
    for key, typ in _SAFE_TYPES.items():
        mod, _, name = key.rpartition(".")
        allow[(mod, name)] = typ
    allow[("builtins", "bytearray")] = _Callable("builtins.bytearray", _bytearray)
    allow[("_codecs", "encode")] = _Callable("_codecs.encode", _codecs_encode)
    allow[("copyreg", "_reconstructor")] = _Callable("copyreg._reconstructor", _copyreg_reconstructor)
    for name, fn in [("_rebuild_tensor", _rebuild_tensor), ("_rebuild_tensor_v2", _rebuild_tensor_v2),
                     ("_rebuild_tensor_v3", _rebuild_tensor_v3), ("_rebuild_parameter", _rebuild_parameter),
                     ("_rebuild_parameter_with_state", _rebuild_parameter)]:
        allow[("torch._utils", name)] = _Callable(f"torch._utils.{name}", fn)
    allow[("torch.storage", "_load_from_bytes")] = _Callable("torch.storage._load_from_bytes",
                                                            lambda *a: _load_from_bytes(*a))  # defined below
    for name, dt in _TORCH_STORAGE_TYPES.items():
        for mod in ("torch", "torch.cuda"):
            allow[(mod, name)] = _StorageType(f"{mod}.{name}", _TORCH_DTYPES[dt])
    for name, dt in _TORCH_DTYPES.items():
        allow[("torch", name)] = dt
    for alias, name in _TORCH_DTYPE_ALIASES.items():
        allow[("torch", alias)] = _TORCH_DTYPES[name]
    return allow


_ALLOWED = _build_allowlist()


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves globals only from _ALLOWED and persistent ids only through
    the handler it is given (torch storages); everything else raises _Refused/UnpicklingError."""

    def __init__(self, file, persistent_handler=None):
        # latin1: Python-2 pickles of numpy arrays hold the data as str; numpy decodes latin1.
        super().__init__(file, encoding="latin1", fix_imports=True)
        self._persistent_handler = persistent_handler

    def find_class(self, module, name):
        # The stock find_class maps Python-2 names (copy_reg, __builtin__) itself; since it is
        # replaced here, apply the same mapping before the lookup. Nothing is imported.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise _Refused(module, name)
        return obj

    def persistent_load(self, pid):
        if self._persistent_handler is None:
            raise pickle.UnpicklingError("unexpected persistent id in a plain pickle")
        return self._persistent_handler(pid)


def _materialize(obj):
    """Replace every _LazyTensor in a container tree by its numpy array.

    Results are memoised by object identity: a pickle can share one container many times
    (memo references), and walking such a DAG naively grows exponentially with its depth.
    Cycles and excessive nesting are refused. Stand-ins that appear as plain data (a torch
    dtype stored in a dict, say) become their description, a string."""
    done, active = {}, set()

    def walk(o, depth):
        if isinstance(o, _LazyTensor):
            if id(o) not in done:
                done[id(o)] = (o, o.to_numpy())
            return done[id(o)][1]
        if isinstance(o, _Frozen):
            return repr(o)
        if not isinstance(o, (list, tuple, dict)):
            return o
        if id(o) in done:
            return done[id(o)][1]
        if id(o) in active:
            raise pickle.UnpicklingError("the data refers to itself (cyclic containers)")
        if depth > 100:
            raise pickle.UnpicklingError("containers nested too deeply")
        active.add(id(o))
        if isinstance(o, dict):
            out = collections.OrderedDict() if isinstance(o, collections.OrderedDict) else {}
            for k, v in o.items():
                out[k] = walk(v, depth + 1)
        elif isinstance(o, list):
            out = [walk(v, depth + 1) for v in o]
        else:
            out = tuple(walk(v, depth + 1) for v in o)
        active.discard(id(o))
        done[id(o)] = (o, out)  # keep `o` alive so that its id is not reused
        return out

    return walk(obj, 0)


def _run(source, fn, what):
    """Run a decoding step, turning every failure into a DecodeError that names `source`."""
    # A failed allocation inside the C unpickler (a huge length field) can make CPython print
    # "SystemError: deallocated bytearray object has exported buffers" through sys.excepthook
    # while unwinding. The failure is reported properly below, so mute that stray output.
    old_hooks = sys.excepthook, sys.unraisablehook
    sys.excepthook, sys.unraisablehook = (lambda *args: None), (lambda unraisable: None)
    try:
        return fn()
    except DecodeError:
        raise
    except _Refused as e:
        raise RefusedGlobal(e.module, e.name, source) from None
    except (MemoryError, RecursionError) as e:
        raise DecodeError(f"{source}: cannot decode ({type(e).__name__}); the file is malformed or too large") from None
    except Exception as e:  # noqa: BLE001 - malformed input can fail in many ways
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DecodeError(f"{source}: cannot read it as {what}: {msg}") from None
    finally:
        sys.excepthook, sys.unraisablehook = old_hooks


# --------------------------------------------------------------------------- plain pickles


def load_pickle(path):
    """Load a pickle of arrays/tensors with the restricted unpickler (torch tensors pickled with
    plain pickle use torch.storage._load_from_bytes, handled here as well)."""
    path = os.fspath(path)

    def go():
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f).load()
            return _materialize(obj)

    return _run(path, go, "a pickle")


# --------------------------------------------------------------------------- torch.save formats


def _load_from_bytes(data):
    """torch.storage._load_from_bytes: a storage pickled with plain pickle holds a complete
    legacy-format torch.save stream of itself."""
    if not isinstance(data, (bytes, bytearray)):
        _bad("torch.storage._load_from_bytes: argument is not bytes")
    obj = _legacy_load(io.BytesIO(bytes(data)))
    if not isinstance(obj, _Storage):
        _bad("torch.storage._load_from_bytes: the stream does not hold a storage")
    return obj


def _text(value):
    """A storage key or id tag: str, or bytes from a Python-2 writer. Nothing else is accepted
    (str() of an arbitrary shared structure could take exponential time)."""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    if isinstance(value, str):
        return value
    _bad(f"expected a string in a persistent id, got {type(value).__name__}")


def _legacy_load(f):
    """torch.save(..., _use_new_zipfile_serialization=False): a magic number, a protocol
    version, a sys-info dict, the main pickle (storages as persistent ids), the list of storage
    keys, then for each storage an int64 element count and the little-endian element bytes."""
    magic = RestrictedUnpickler(f).load()
    if magic != _TORCH_LEGACY_MAGIC_NUMBER:
        _bad("not a torch legacy file (bad magic number)")
    if RestrictedUnpickler(f).load() != _TORCH_LEGACY_PROTOCOL:
        _bad("unsupported torch legacy protocol version")
    sys_info = RestrictedUnpickler(f).load()
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        _bad("big-endian torch legacy files are not supported")
    storages = {}

    def persistent(pid):
        if not isinstance(pid, tuple) or not pid:
            _bad("bad persistent id")
        kind = _text(pid[0])
        if kind == "module":
            # Legacy files may embed the source code of nn.Module classes: never needed for data.
            _bad("refusing a pickled torch module (only tensors are allowed)")
        if kind != "storage" or len(pid) != 6:
            _bad(f"unexpected persistent id {_text(kind)!r}")
        storage_type, key, _location, numel, view = pid[1:]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            _bad("bad storage description")
        key = _text(key)
        if key not in storages:
            storages[key] = _Storage(storage_type.dtype, numel)
        root = storages[key]
        if view is not None:  # (view_key, offset, view_size): a storage view, torch < 0.4
            view_key, offset, size = view
            if not (isinstance(offset, int) and isinstance(size, int) and 0 <= offset and offset + size <= root.numel):
                _bad("bad storage view")
            view_key = _text(view_key)
            if view_key not in storages:
                storages[view_key] = _Storage(root.dtype, size, base=root, offset=offset)
            return storages[view_key]
        return root

    result = RestrictedUnpickler(f, persistent).load()
    keys = RestrictedUnpickler(f).load()
    if not isinstance(keys, list):
        _bad("bad storage key list")
    for key in keys:
        key = _text(key)
        st = storages.get(key)
        if st is None or st.base is not None:
            _bad(f"storage key {key!r} was not announced")
        header = f.read(8)
        if len(header) != 8:
            _bad("file is truncated (storage header)")
        (numel,) = struct.unpack("<q", header)
        if numel != st.numel:
            _bad(f"storage {key!r} holds {numel} elements, expected {st.numel}")
        nbytes = numel * st.dtype.itemsize
        if nbytes > _remaining(f):  # check before reading: a forged count must not allocate
            _bad("file is truncated (storage data)")
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            _bad("file is truncated (storage data)")
        st.set_data(np.frombuffer(raw, dtype=st.dtype.raw))
    return result if isinstance(result, _Storage) else _materialize(result)


def _remaining(f):
    here = f.tell()
    end = f.seek(0, io.SEEK_END)
    f.seek(here)
    return end - here


def _zip_load(path, zf):
    """torch.save zip format (torch >= 1.6): <prefix>/data.pkl with storages as persistent ids
    ('storage', storage_type, key, location, numel) and the bytes in <prefix>/data/<key>."""
    pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        _bad("zip archive is not a torch.save file (no <name>/data.pkl)")
    prefix = pkls[0][: -len("data.pkl")]
    names = set(zf.namelist())
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            _bad(f"unknown byte order {byteorder!r}")
    storages = {}

    def persistent(pid):
        if not isinstance(pid, tuple) or len(pid) != 5:
            _bad("bad persistent id")
        kind, storage_type, key, _location, numel = pid
        kind = _text(kind)
        if kind != "storage":
            _bad(f"unexpected persistent id {_text(kind)!r}")
        if isinstance(storage_type, _TorchDType):  # some versions put the dtype itself here
            dtype = storage_type
        elif isinstance(storage_type, _StorageType):
            dtype = storage_type.dtype
        else:
            _bad("bad storage type")
        if not isinstance(numel, int) or numel < 0:
            _bad("bad storage size")
        key = _text(key)
        if key in storages:
            return storages[key]
        record = prefix + "data/" + key
        if record not in names:
            _bad(f"storage record {record!r} is missing")
        nbytes = numel * dtype.itemsize
        info = zf.getinfo(record)
        if info.file_size < nbytes:
            _bad(f"storage record {record!r} is shorter than its {numel} elements")
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > 1000 * max(info.compress_size, 1):
            # torch.save never compresses; tensor data does not shrink 1000-fold: a zip bomb.
            _bad(f"storage record {record!r} expands {info.file_size // max(info.compress_size, 1)}-fold")
        with zf.open(record) as rf:
            raw = rf.read(nbytes)
        if len(raw) != nbytes:
            _bad(f"storage record {record!r} is truncated")
        arr = np.frombuffer(raw, dtype=dtype.raw.newbyteorder("<" if byteorder == "little" else ">"))
        storages[key] = _Storage(dtype, numel, data=arr)
        return storages[key]

    with zf.open(pkls[0]) as pf:
        obj = RestrictedUnpickler(io.BytesIO(pf.read()), persistent).load()
    return _materialize(obj)


def load_torch(path):
    """Load a torch.save file (zip format, or the legacy non-zip format) without torch."""
    path = os.fspath(path)
    kind = sniff(path)
    if kind == "torch-tar":
        raise DecodeError(f"{path}: this is torch's pre-0.4 tar format; re-save it with torch >= 1.6 "
                          "(torch.save(torch.load(f), g)) and convert that")

    def go():
        if kind == "torch":
            with zipfile.ZipFile(path) as zf:
                return _zip_load(path, zf)
        if kind == "torch-legacy":
            with open(path, "rb") as f:
                result = _legacy_load(f)
            if isinstance(result, _Storage):
                _bad("the file holds a bare storage, not a tensor")
            return result
        _bad("not a torch.save file (neither a zip archive with data.pkl nor the legacy format)")

    return _run(path, go, "a torch.save file")


# --------------------------------------------------------------------------- format sniffing


def sniff(path):
    """Tell a file's format from its first bytes (and, for zip archives, its member names)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except Exception:  # noqa: BLE001 - a damaged archive raises many kinds; the loader will report it
            return None
        if any(n.endswith("/data.pkl") and n.count("/") == 1 for n in names):
            return "torch"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return None
    if head.startswith(_TORCH_LEGACY_PREFIX):
        return "torch-legacy"
    if len(head) >= 262 and head[257:262] == b"ustar":  # tar archive: torch < 0.4
        return "torch-tar"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    return None
