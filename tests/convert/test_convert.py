# Tests for experiments/convert/calibench_convert.py: every input format round-trips into the
# HDF5 dump schema, the real literature files reproduce the staged copies in data/real/h5, bad
# input exits 2 with one line, and malicious pickles / .pt files are refused without running code.
# .pt files are crafted here without torch (torch must never be needed). Run: pytest tests/convert
import collections
import io
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CONVERT_DIR = REPO / "experiments" / "convert"
SCRIPT = CONVERT_DIR / "calibench_convert.py"
REAL = pathlib.Path("/work/shared/data/real")
PREFIX = "calibench-convert: error: "

sys.path.insert(0, str(CONVERT_DIR))
import calibench_convert  # noqa: E402
import safe_unpickle  # noqa: E402


# ============================================================================ helpers


def make_split(n, k, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    logits = (3.0 * rng.normal(size=(n, k))).astype(dtype)
    labels = rng.integers(0, k, size=n)
    return logits, labels


def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


from convert_helpers import convert, convert_ok, read_dump  # noqa: E402,F401  (shared by the converter suites)


def run_cli(*args, env=None, cwd=None):
    """Run the converter as a user would."""
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=60, env=env, cwd=cwd or REPO)


def check_dump(path, val, test, stored="logits", dtype=None, k=None):
    """The dump holds exactly `val`/`test` (logits, labels) with the schema's attributes and types."""
    attrs, data = read_dump(path)
    assert attrs["format"] == "calibench-logits"
    assert int(attrs["version"]) == 1 and np.asarray(attrs["version"]).dtype.kind == "i"
    assert int(attrs["num_classes"]) == (k or val[0].shape[1])
    assert isinstance(attrs["dataset"], str) and isinstance(attrs["model"], str)
    assert "calibench-convert" in attrs["source"]
    for split, (values, labels) in (("val", val), ("test", test)):
        got = data[f"{split}/{stored}"]
        want = np.asarray(values)
        assert got.dtype == (dtype or want.dtype), f"{split}: dtype {got.dtype}"
        np.testing.assert_array_equal(got, want.astype(got.dtype))
        assert data[f"{split}/labels"].dtype == np.int32
        np.testing.assert_array_equal(data[f"{split}/labels"], np.asarray(labels).reshape(-1))
    return attrs, data


def check_rejected(res, *needles, path=None):
    """Exit 2, nothing on stdout, exactly one stderr line with the prefix, naming file and index."""
    desc = f"\n rc={res.returncode}\n stdout={res.stdout!r}\n stderr={res.stderr!r}"
    assert res.returncode == 2, "expected exit status 2" + desc
    assert res.stdout == "", "stdout not empty" + desc
    assert len(res.stderr.splitlines()) == 1, "stderr is not one line" + desc
    assert res.stderr.startswith(PREFIX), desc
    assert "Traceback" not in res.stderr, desc
    msg = res.stderr
    if path is not None:
        assert str(path) in msg, f"message does not name {path}" + desc
        msg = msg.replace(str(path), "<FILE>")  # digits of tmp paths must not satisfy the checks
    for needle in needles:
        assert needle in msg, f"message lacks {needle!r}" + desc
    return msg


# ---------------------------------------------------------------------------- crafting .pt files
#
# torch.save pickles a tensor as torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
# requires_grad, backward_hooks) where the storage is a persistent id
# ('storage', torch.FloatStorage, key, location, numel). The pure-Python pickler below writes
# exactly these opcodes from stand-in objects: G is a global written by name (never imported).


class G:
    """A global (module, name) that the pickler writes by name."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle insists that a reduce function be callable
        raise AssertionError("never called")


class Storage:
    def __init__(self, key, storage_type, raw, numel, location="cpu"):
        self.key, self.storage_type, self.raw, self.numel, self.location = key, storage_type, raw, numel, location


class Tensor:
    def __init__(self, storage, offset, size, stride, rebuild="_rebuild_tensor_v2", extra=()):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)
        self.rebuild, self.extra = rebuild, extra


class Reduce:
    """An arbitrary call func(*args) to write into a pickle."""

    def __init__(self, func, args):
        self.func, self.args = func, args


class TorchLikePickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file, protocol, legacy=False):
        super().__init__(file, protocol=protocol)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            pid = ("storage", G("torch", obj.storage_type), obj.key, obj.location, obj.numel)
            return pid + (None,) if self.legacy else pid  # legacy ids carry view metadata
        return None

    def reducer_override(self, obj):
        if isinstance(obj, Tensor):
            args = (obj.storage, obj.offset, obj.size, obj.stride) + (
                (False, collections.OrderedDict()) if obj.rebuild != "_rebuild_tensor" else ()) + obj.extra
            return G("torch._utils", obj.rebuild), args
        if isinstance(obj, Reduce):
            return obj.func, obj.args
        return NotImplemented


def _save_global(self, obj):
    if self.proto >= 4:
        self.save(obj.module)
        self.save(obj.name)
        self.write(pickle.STACK_GLOBAL)
    else:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())


TorchLikePickler.dispatch[G] = _save_global

STORAGE_OF = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
              "int64": "LongStorage", "int32": "IntStorage", "uint8": "ByteStorage", "int16": "ShortStorage"}


class Builder:
    """Collects storages while a structure of numpy arrays is turned into Tensor stand-ins."""

    def __init__(self):
        self.storages = []

    def storage(self, flat, storage_type=None, raw=None):
        key = str(len(self.storages))
        st = Storage(key, storage_type or STORAGE_OF[flat.dtype.name],
                     raw if raw is not None else np.ascontiguousarray(flat).astype(flat.dtype.newbyteorder("<")).tobytes(),
                     flat.size)
        self.storages.append(st)
        return st

    def tensor(self, arr):
        arr = np.ascontiguousarray(arr)
        st = self.storage(arr.reshape(-1))
        stride = tuple(s // arr.itemsize for s in arr.strides) if arr.ndim else ()
        return Tensor(st, 0, arr.shape, stride)

    def convert(self, obj):
        if isinstance(obj, np.ndarray):
            return self.tensor(obj)
        if isinstance(obj, tuple):
            return tuple(self.convert(o) for o in obj)
        if isinstance(obj, list):
            return [self.convert(o) for o in obj]
        if isinstance(obj, dict):
            return {k: self.convert(v) for k, v in obj.items()}
        return obj


def write_pt(path, obj, protocol=2, builder=None, byteorder="little", prefix="archive"):
    """A torch.save zip file (torch >= 1.6 layout) holding `obj` (numpy arrays become tensors)."""
    builder = builder or Builder()
    payload = builder.convert(obj) if not isinstance(obj, (Tensor, Reduce)) else obj
    buf = io.BytesIO()
    TorchLikePickler(buf, protocol).dump(payload)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/data.pkl", buf.getvalue())
        if byteorder is not None:
            zf.writestr(f"{prefix}/byteorder", byteorder)
        for st in builder.storages:
            zf.writestr(f"{prefix}/data/{st.key}", st.raw)
        zf.writestr(f"{prefix}/version", "3\n")
    return path


def legacy_stream(obj, builder=None):
    """torch.save(..., _use_new_zipfile_serialization=False) bytes: magic, protocol, sys info,
    main pickle, storage keys, then per storage an int64 count and the raw bytes."""
    builder = builder or Builder()
    payload = builder.convert(obj) if not isinstance(obj, (Tensor, Storage)) else obj
    buf = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, buf, protocol=2)
    TorchLikePickler(buf, 2, legacy=True).dump(payload)
    pickle.dump([st.key for st in builder.storages], buf, protocol=2)
    for st in builder.storages:
        buf.write(struct.pack("<q", st.numel))
        buf.write(st.raw)
    return buf.getvalue()


# ---------------------------------------------------------------------------- fixtures


N_VAL, N_TEST, K = 60, 80, 5


@pytest.fixture
def data():
    val = make_split(N_VAL, K, 1)
    test = make_split(N_TEST, K, 2)
    return val, test


# ============================================================================ round trips: pickles


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("container", [tuple, list])
def test_pickle_roundtrip(tmp_path, data, protocol, container):
    (lv, yv), (lt, yt) = data
    src = tmp_path / "logits.p"
    with open(src, "wb") as f:
        pickle.dump(container([(lv, yv[:, None]), (lt, yt[:, None])]), f, protocol=protocol)
    out = tmp_path / "out.h5"
    convert_ok(src, "-o", out, "--dataset", "synthetic", "--model", "m")
    attrs, _ = check_dump(out, (lv, yv), (lt, yt))
    assert attrs["dataset"] == "synthetic" and attrs["model"] == "m"
    assert "[N, 1] flattened" in attrs["source"] and src.name in attrs["source"]


def test_pickle_keeps_float16_and_float64(tmp_path, data):
    (lv, yv), (lt, yt) = data
    for dtype in (np.float16, np.float64):
        src = tmp_path / f"l_{np.dtype(dtype).name}.pkl"
        with open(src, "wb") as f:
            pickle.dump(((lv.astype(dtype), yv), (lt.astype(dtype), yt.astype(np.uint8))), f, protocol=4)
        out = tmp_path / f"o_{np.dtype(dtype).name}.h5"
        convert_ok(src, "-o", out)
        check_dump(out, (lv.astype(dtype), yv), (lt.astype(dtype), yt), dtype=np.dtype(dtype))
    # --dtype overrides, and other float types (long double) become float32
    out = tmp_path / "forced.h5"
    convert_ok(tmp_path / "l_float64.pkl", "-o", out, "--dtype", "float32")
    check_dump(out, (lv, yv), (lt, yt), dtype=np.float32)
    if np.dtype(np.longdouble).itemsize > 8:
        src = tmp_path / "ld.npz"
        np.savez(src, logits_val=lv.astype(np.longdouble), y_val=yv, logits_test=lt.astype(np.longdouble), y_test=yt)
        convert_ok(src, "-o", tmp_path / "ld.h5")
        check_dump(tmp_path / "ld.h5", (lv, yv), (lt, yt), dtype=np.float32)


def test_python2_style_pickle(tmp_path):
    """A Python-2 pickle of numpy arrays: data as a py2 str (BINSTRING), read with latin1, and
    Python-2 module names (copy_reg, __builtin__)."""
    def arr_ops(a):
        raw = a.tobytes()
        shape = b"".join(b"J" + struct.pack("<i", s) for s in a.shape)
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
                + b"(K\x01(" + shape + b"tcnumpy\ndtype\nU\x02" + a.dtype.str[1:].encode() + b"K\x00K\x01\x87R"
                + b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T" + struct.pack("<I", len(raw))
                + raw + b"tb")
    lv, yv = make_split(20, 3, 5)
    lt, yt = make_split(30, 3, 6)
    body = b"\x80\x02((" + arr_ops(lv) + arr_ops(yv) + b"t(" + arr_ops(lt) + arr_ops(yt) + b"tt."
    src = tmp_path / "py2.p"
    src.write_bytes(body)
    convert_ok(src, "-o", tmp_path / "py2.h5")
    check_dump(tmp_path / "py2.h5", (lv, yv), (lt, yt))
    # copy_reg._reconstructor and __builtin__ names (protocol 0 style) map and are allowed
    p = tmp_path / "copyreg.p"
    p.write_bytes(b"ccopy_reg\n_reconstructor\n(c__builtin__\nlist\nc__builtin__\nlist\n(ltR.")
    assert safe_unpickle.load_pickle(p) == []


def test_pickle_single_set_split(tmp_path):
    logits, labels = make_split(101, 4, 3)
    src = tmp_path / "single.p"
    with open(src, "wb") as f:
        pickle.dump((logits, labels[:, None]), f, protocol=4)
    out = tmp_path / "single.h5"
    convert_ok(src, "-o", out, "--split-seed", "7")
    perm = np.random.RandomState(7).permutation(101)
    vi, ti = np.sort(perm[:50]), np.sort(perm[50:])
    attrs, data = check_dump(out, (logits[vi], labels[vi]), (logits[ti], labels[ti]))
    assert data["val/index"].dtype == np.int32 and data["test/index"].dtype == np.int32
    np.testing.assert_array_equal(data["val/index"], vi)
    np.testing.assert_array_equal(data["test/index"], ti)
    assert "RandomState(7)" in attrs["source"]


def test_pickled_dict_and_nested_groups(tmp_path, data):
    (lv, yv), (lt, yt) = data
    src = tmp_path / "d.pkl"
    with open(src, "wb") as f:
        pickle.dump({"val_logits": lv, "val_labels": yv, "test_logits": lt, "test_labels": yt,
                     "temperature": np.float64(1.5), "class_names": [f"c{i}" for i in range(K)]}, f, protocol=5)
    convert_ok(src, "-o", tmp_path / "d.h5")
    attrs, _ = check_dump(tmp_path / "d.h5", (lv, yv), (lt, yt))
    assert list(attrs["class_names"]) == [f"c{i}" for i in range(K)]
    src = tmp_path / "nested.pkl"
    with open(src, "wb") as f:
        pickle.dump({"val": {"logits": lv, "labels": yv}, "test": {"logits": lt, "labels": yt}}, f)
    convert_ok(src, "-o", tmp_path / "nested.h5")
    check_dump(tmp_path / "nested.h5", (lv, yv), (lt, yt))


# ============================================================================ round trips: npz / npy


def test_npz_default_and_custom_keys(tmp_path, data):
    (lv, yv), (lt, yt) = data
    src = tmp_path / "a.npz"
    np.savez(src, logits_val=lv, y_val=yv, logits_test=lt, y_test=yt)
    convert_ok(src, "-o", tmp_path / "a.h5")
    check_dump(tmp_path / "a.h5", (lv, yv), (lt, yt))

    src = tmp_path / "b.npz"
    np.savez_compressed(src, A=lv, B=yv, C=lt, D=yt)
    convert_ok(src, "-o", tmp_path / "b.h5", "--val-logits-key", "A", "--val-labels-key", "B",
               "--test-logits-key", "C", "--test-labels-key", "D")
    check_dump(tmp_path / "b.h5", (lv, yv), (lt, yt))


def test_npz_single_set_probs(tmp_path):
    logits, labels = make_split(90, 6, 4)
    probs = softmax(logits).astype(np.float32)
    src = tmp_path / "netcal.npz"
    np.savez(src, predictions=probs, ground_truth=labels)
    perm = np.random.RandomState(0).permutation(90)
    vi, ti = np.sort(perm[:45]), np.sort(perm[45:])
    convert_ok(src, "-o", tmp_path / "p.h5", "--split-seed", "0", "--probs")
    check_dump(tmp_path / "p.h5", (probs[vi], labels[vi]), (probs[ti], labels[ti]), stored="probs")
    convert_ok(src, "-o", tmp_path / "l.h5", "--split-seed", "0", "--probs-to-logits")
    logp = np.log(np.maximum(probs.astype(np.float64), 1e-38)).astype(np.float32)
    check_dump(tmp_path / "l.h5", (logp[vi], labels[vi]), (logp[ti], labels[ti]))
    # custom single-set keys, and a warning when probabilities are not flagged
    src2 = tmp_path / "custom.npz"
    np.savez(src2, P=probs, Y=labels)
    _, err = convert_ok(src2, "-o", tmp_path / "c.h5", "--split-seed", "0", "--logits-key", "P", "--labels-key", "Y")
    assert "look like probabilities" in err


def test_npy_pairs_and_one_hot(tmp_path, data):
    (lv, yv), (lt, yt) = data
    files = {}
    for name, arr in [("vl", lv), ("vy", np.eye(K, dtype=np.float32)[yv]), ("tl", lt), ("ty", yt.astype(np.int16))]:
        files[name] = tmp_path / f"{name}.npy"
        np.save(files[name], arr)
    out = tmp_path / "pairs.h5"
    convert_ok("--val-logits", files["vl"], "--val-labels", files["vy"], "--test-logits", files["tl"],
               "--test-labels", files["ty"], "-o", out)
    attrs, _ = check_dump(out, (lv, yv), (lt, yt))
    assert "one-hot" in attrs["source"] and "argmax" in attrs["source"]

    logits, labels = make_split(40, 3, 9)
    np.save(tmp_path / "l.npy", logits)
    np.save(tmp_path / "y.npy", labels.astype(np.float64))  # integral floats are accepted
    convert_ok("--logits", tmp_path / "l.npy", "--labels", tmp_path / "y.npy", "--split-seed", "3",
               "-o", tmp_path / "single.h5", "--class-names", "cat,dog,bird")
    perm = np.random.RandomState(3).permutation(40)
    vi, ti = np.sort(perm[:20]), np.sort(perm[20:])
    attrs, _ = check_dump(tmp_path / "single.h5", (logits[vi], labels[vi]), (logits[ti], labels[ti]))
    assert list(attrs["class_names"]) == ["cat", "dog", "bird"]


def test_npy_object_array_is_never_unpickled(tmp_path):
    marker = tmp_path / "PWNED"
    arr = np.array([Evil(os.system, f"touch {marker}")], dtype=object)
    np.save(tmp_path / "obj.npy", arr, allow_pickle=True)
    np.save(tmp_path / "y.npy", np.zeros(1, dtype=np.int64))
    res = run_cli("--logits", tmp_path / "obj.npy", "--labels", tmp_path / "y.npy", "--split-seed", "0",
                  "-o", tmp_path / "o.h5")
    check_rejected(res, "object array", path=tmp_path / "obj.npy")
    assert not marker.exists()


# ============================================================================ round trips: .pt


@pytest.mark.parametrize("protocol", [2, 4])
def test_pt_tuple_roundtrip(tmp_path, data, protocol):
    (lv, yv), (lt, yt) = data
    src = write_pt(tmp_path / "logits.pt", ((lv, yv), (lt, yt.astype(np.int32))), protocol=protocol)
    assert safe_unpickle.sniff(src) == "torch"
    convert_ok(src, "-o", tmp_path / "pt.h5")
    check_dump(tmp_path / "pt.h5", (lv, yv), (lt, yt))
    assert "torch" not in sys.modules, "the converter imported torch"


def test_pt_dict_dtypes(tmp_path, data):
    (lv, yv), (lt, yt) = data
    for dtype in (np.float16, np.float64):
        src = write_pt(tmp_path / f"d_{np.dtype(dtype).name}.pth",
                       {"logits_val": lv.astype(dtype), "y_val": yv.astype(np.uint8),
                        "logits_test": lt.astype(dtype), "y_test": yt}, protocol=2, prefix="d_" + np.dtype(dtype).name)
        out = tmp_path / f"d_{np.dtype(dtype).name}.h5"
        convert_ok(src, "-o", out)
        check_dump(out, (lv.astype(dtype), yv), (lt.astype(dtype), yt), dtype=np.dtype(dtype))


def test_pt_bfloat16_views_and_strides(tmp_path):
    """bfloat16 widens exactly to float32; tensors that share one storage (storage offsets) and
    non-contiguous (transposed) tensors are rebuilt; nn.Parameter wrapping is unwrapped."""
    rng = np.random.default_rng(0)
    b = Builder()
    # bfloat16: keep the upper 16 bits of float32 values (exactly representable)
    vals = (rng.normal(size=(30, 4)) * 4).astype(np.float32)
    bf_bits = (vals.view(np.uint32) >> 16).astype(np.uint16)
    bf = (bf_bits.astype(np.uint32) << 16).view(np.float32)
    st_bf = b.storage(bf_bits.reshape(-1), storage_type="BFloat16Storage", raw=bf_bits.astype("<u2").tobytes())
    val_logits = Tensor(st_bf, 0, (30, 4), (4, 1))
    # test logits: transposed view of a (4, 50) float32 storage; labels: two halves of one storage
    base = (rng.normal(size=(4, 50))).astype(np.float32)
    st_t = b.storage(base.reshape(-1))
    test_logits = Tensor(st_t, 0, (50, 4), (1, 50))
    labels = rng.integers(0, 4, size=80)
    st_y = b.storage(labels.astype(np.int64))
    val_labels, test_labels = Tensor(st_y, 0, (30,), (1,)), Tensor(st_y, 30, (50,), (1,))
    param = Reduce(G("torch._utils", "_rebuild_parameter"), (val_logits, False, collections.OrderedDict()))
    src = write_pt(tmp_path / "views.pt", {"val_logits": param, "val_labels": val_labels,
                                           "test_logits": test_logits, "test_labels": test_labels}, builder=b)
    convert_ok(src, "-o", tmp_path / "views.h5")
    check_dump(tmp_path / "views.h5", (bf, labels[:30]), (base.T, labels[30:]), dtype=np.float32)


def test_pt_big_endian_and_v3(tmp_path):
    lv, yv = make_split(12, 3, 1)
    lt, yt = make_split(14, 3, 2)
    b = Builder()
    tensors = []
    for arr, st_type in ((lv, "FloatStorage"), (yv.astype(np.int64), "LongStorage"), (lt, "FloatStorage"),
                         (yt.astype(np.int64), "LongStorage")):
        st = b.storage(arr.reshape(-1), storage_type=st_type, raw=arr.astype(arr.dtype.newbyteorder(">")).tobytes())
        tensors.append(Tensor(st, 0, arr.shape, tuple(s // arr.itemsize for s in arr.strides)))
    src = write_pt(tmp_path / "be.pt", ((tensors[0], tensors[1]), (tensors[2], tensors[3])), builder=b,
                   byteorder="big")
    convert_ok(src, "-o", tmp_path / "be.h5")
    check_dump(tmp_path / "be.h5", (lv, yv), (lt, yt))
    # _rebuild_tensor_v3: an untyped (byte) storage reinterpreted with a dtype argument
    b = Builder()
    def v3(arr, dtype_name):
        st = b.storage(np.frombuffer(arr.tobytes(), np.uint8), storage_type="UntypedStorage")
        return Tensor(st, 0, arr.shape, tuple(s // arr.itemsize for s in arr.strides), rebuild="_rebuild_tensor_v3",
                      extra=(G("torch", dtype_name),))
    src = write_pt(tmp_path / "v3.pt", ((v3(lv, "float32"), v3(yv.astype(np.int64), "int64")),
                                        (v3(lt, "float32"), v3(yt.astype(np.int64), "int64"))), builder=b, protocol=4)
    convert_ok(src, "-o", tmp_path / "v3.h5")
    check_dump(tmp_path / "v3.h5", (lv, yv), (lt, yt))


def test_torch_legacy_format_and_load_from_bytes(tmp_path, data):
    (lv, yv), (lt, yt) = data
    src = tmp_path / "legacy.pt"
    src.write_bytes(legacy_stream(((lv, yv), (lt, yt))))
    assert safe_unpickle.sniff(src) == "torch-legacy"
    convert_ok(src, "-o", tmp_path / "legacy.h5")
    check_dump(tmp_path / "legacy.h5", (lv, yv), (lt, yt))

    # A tensor pickled with plain pickle (as in liorfrenkel1992/calibration): its storage is
    # torch.storage._load_from_bytes(<legacy torch.save stream of the storage>).
    def plain_tensor_pickle(arr, path):
        b = Builder()
        st = b.storage(arr.reshape(-1))
        inner = legacy_stream(st, builder=b)
        storage = Reduce(G("torch.storage", "_load_from_bytes"), (inner,))
        tensor = Reduce(G("torch._utils", "_rebuild_tensor_v2"),
                        (storage, 0, arr.shape, tuple(s // arr.itemsize for s in arr.strides), False,
                         collections.OrderedDict()))
        with open(path, "wb") as f:
            TorchLikePickler(f, 4).dump(tensor)
        return path

    files = [plain_tensor_pickle(a, tmp_path / f"{n}.pickle")
             for n, a in [("vl", lv), ("vy", yv), ("tl", lt), ("ty", yt)]]
    convert_ok("--val-logits", files[0], "--val-labels", files[1], "--test-logits", files[2],
               "--test-labels", files[3], "-o", tmp_path / "plain.h5")
    check_dump(tmp_path / "plain.h5", (lv, yv), (lt, yt))


def test_torch_is_never_imported(tmp_path, data):
    """Run the CLI with a booby-trapped `torch` package first on the path."""
    (lv, yv), (lt, yt) = data
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    marker = tmp_path / "TORCH_IMPORTED"
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError('no torch here')\n")
    src = write_pt(tmp_path / "x.pt", ((lv, yv), (lt, yt)))
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "fake"))
    res = run_cli(src, "-o", tmp_path / "x.h5", env=env)
    assert res.returncode == 0, res.stderr
    assert not marker.exists()
    check_dump(tmp_path / "x.h5", (lv, yv), (lt, yt))


# ============================================================================ CLI success, misc


def test_cli_success_inspect_and_force(tmp_path, data):
    (lv, yv), (lt, yt) = data
    src = tmp_path / "in.p"
    with open(src, "wb") as f:
        pickle.dump(((lv, yv), (lt, yt)), f, protocol=2)
    out = tmp_path / "out.h5"
    res = run_cli(src, "-o", out, "--dataset", "D", "--model", "M", "--attr", "license=MIT", "--gzip", "4")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert "wrote" in res.stdout
    attrs, _ = check_dump(out, (lv, yv), (lt, yt))
    assert attrs["license"] == "MIT"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "temporary file left behind"
    # exists -> refused without --force, replaced with it
    check_rejected(run_cli(src, "-o", out), "--force", path=out)
    assert run_cli(src, "-o", out, "--force", "-q").returncode == 0
    res = run_cli(src, "--inspect")
    assert res.returncode == 0 and "float32" in res.stdout and "(60, 5)" in res.stdout


# ============================================================================ validation errors


def write_pair_pickle(path, lv, yv, lt, yt):
    with open(path, "wb") as f:
        pickle.dump(((lv, yv), (lt, yt)), f, protocol=4)
    return path


def bad_case(tmp_path, data, **change):
    (lv, yv), (lt, yt) = data
    arrays = dict(lv=lv.copy(), yv=yv.copy(), lt=lt.copy(), yt=yt.copy())
    for key, fn in change.items():
        arrays[key] = fn(arrays[key])
    return write_pair_pickle(tmp_path / "bad.p", arrays["lv"], arrays["yv"], arrays["lt"], arrays["yt"])


def set_at(idx, value):
    def fn(a):
        a = a.astype(np.float32) if isinstance(value, float) and a.dtype.kind != "f" else a
        a[idx] = value
        return a
    return fn


@pytest.mark.parametrize("name, change, needles", [
    ("nan", dict(lt=set_at((7, 3), np.nan)), ["test logits", "NaN", "index [7, 3]"]),
    ("inf", dict(lv=set_at((4, 0), np.inf)), ["val logits", "Inf", "index [4, 0]"]),
    ("neg_inf", dict(lv=set_at((9, 2), -np.inf)), ["-Inf", "index [9, 2]"]),
    ("label_high", dict(yv=set_at(11, K)), ["val labels", f"label {K} outside [0, {K})", "index 11"]),
    ("label_negative", dict(yt=set_at(3, -1)), ["test labels", "label -1", "index 3"]),
    ("shape_mismatch", dict(yv=lambda a: a[:-1]), ["val labels", "shape mismatch", f"{N_VAL - 1} labels",
                                                   f"N = {N_VAL}"]),
    # [N, 1] is a binary split now (tests/convert/test_convert_binary.py); no column at all is refused.
    ("k0", dict(lv=lambda a: a[:, :0]), ["val logits", "K = 0"]),
    ("n0", dict(lv=lambda a: a[:0], yv=lambda a: a[:0]), ["val logits", "N = 0"]),
    ("rank", dict(lt=lambda a: a[:, :, None]), ["test logits", "shape"]),
    ("k_mismatch", dict(lt=lambda a: a[:, :3], yt=lambda a: a % 3), ["K = 5", "K = 3"]),
    ("float_label", dict(yv=lambda a: a.astype(np.float64) + np.where(np.arange(len(a)) == 5, 0.5, 0)),
     ["non-integer label", "index 5"]),
    ("int_logits", dict(lv=lambda a: a.astype(np.int64)), ["floating point"]),
    ("one_hot_bad", dict(yv=lambda a: np.where(np.arange(N_VAL)[:, None] == 2, 1, np.eye(K)[a]).astype(np.int64)),
     ["one-hot", "row 2"]),
    ("labels_2d", dict(yt=lambda a: np.stack([a, a, a], axis=1)), ["test labels", "shape"]),
])
def test_validation_errors(tmp_path, data, name, change, needles):
    src = bad_case(tmp_path, data, **change)
    out = tmp_path / "never.h5"
    res = run_cli(src, "-o", out)
    check_rejected(res, *needles, path=src)
    assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_narrowing_dtype_overflow_is_reported(tmp_path, data):
    (lv, yv), (lt, yt) = data
    lv = lv.copy()
    lv[2, 1] = 1e6  # finite in float32, Inf in float16
    src = write_pair_pickle(tmp_path / "big.p", lv, yv, lt, yt)
    res = run_cli(src, "-o", tmp_path / "o.h5", "--dtype", "float16")
    check_rejected(res, "val logits", "Inf after conversion to float16", "index [2, 1]", path=src)


def test_probability_errors(tmp_path):
    logits, labels = make_split(50, 4, 8)
    probs = softmax(logits)
    neg = probs.copy()
    neg[6, 1] = -0.01
    neg[6, 2] += 0.01
    sums = probs.copy()
    sums[13] *= 1.01
    sums[20] *= 1.0005  # within tolerance
    for arr, needles in ((neg, ["negative probability", "index [6, 1]"]), (sums, ["sums to", "index 13"])):
        np.savez(tmp_path / "p.npz", predictions=arr, ground_truth=labels)
        res = run_cli(tmp_path / "p.npz", "--probs", "--split-seed", "0", "-o", tmp_path / "p.h5")
        check_rejected(res, "probabilities", *needles, path=tmp_path / "p.npz")
    fine = probs.copy()
    fine[20] *= 1.0005
    np.savez(tmp_path / "ok.npz", predictions=fine, ground_truth=labels)
    assert convert(tmp_path / "ok.npz", "--probs", "--split-seed", "0", "-o", tmp_path / "ok.h5")[0] == 0


def test_usage_and_file_errors(tmp_path, data):
    (lv, yv), (lt, yt) = data
    single = tmp_path / "single.p"
    with open(single, "wb") as f:
        pickle.dump((lv, yv), f, protocol=2)
    pair = write_pair_pickle(tmp_path / "pair.p", lv, yv, lt, yt)
    np.savez(tmp_path / "keys.npz", foo=lv, bar=yv)
    (tmp_path / "garbage.p").write_bytes(b"\x80\x04this is not a pickle")
    (tmp_path / "truncated.p").write_bytes(pair.read_bytes()[:1000])
    (tmp_path / "text.xyz").write_text("hello")
    (tmp_path / "notzip.pt").write_bytes(b"PK\x03\x04broken")
    out = tmp_path / "o.h5"
    cases = [
        ((single, "-o", out), ["single set", "--split-seed"], single),
        ((pair, "-o", out, "--split-seed", "0"), ["--split-seed"], None),
        ((tmp_path / "missing.p", "-o", out), ["no such file"], tmp_path / "missing.p"),
        ((tmp_path / "keys.npz", "-o", out), ["cannot find logits", "'foo'"], tmp_path / "keys.npz"),
        ((tmp_path / "keys.npz", "-o", out, "--val-logits-key", "nope"), ["nope"], tmp_path / "keys.npz"),
        ((tmp_path / "garbage.p", "-o", out), ["cannot read"], tmp_path / "garbage.p"),
        ((tmp_path / "truncated.p", "-o", out), ["cannot read"], tmp_path / "truncated.p"),
        ((tmp_path / "text.xyz", "-o", out), ["--format"], tmp_path / "text.xyz"),
        ((tmp_path / "notzip.pt", "-o", out), [], tmp_path / "notzip.pt"),
        ((pair,), ["--output"], None),
        ((pair, "-o", out, "--no-such-option"), ["--no-such-option"], None),
        ((pair, "-o", out, "--class-names", "a,b"), ["2 names", "K = 5"], None),
        (("--val-logits", pair, "-o", out), ["--val-labels"], None),
        ((pair, "-o", tmp_path / "no_dir" / "o.h5"), ["does not exist"], None),
    ]
    for args, needles, path in cases:
        check_rejected(run_cli(*args), *needles, path=path)
    assert not out.exists()


# ============================================================================ security


class Evil:
    """An object whose unpickling would call func(arg) with the stock pickle module."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def assert_refused(path, global_name, marker):
    res = run_cli(path, "-o", path.with_suffix(".h5"))
    msg = check_rejected(res, f"refusing to load {global_name} from", "only arrays, tensors", path=path)
    assert not marker.exists(), "the payload ran"
    assert not path.with_suffix(".h5").exists()
    with pytest.raises(safe_unpickle.RefusedGlobal):
        (safe_unpickle.load_torch if path.suffix == ".pt" else safe_unpickle.load_pickle)(path)
    assert not marker.exists(), "the payload ran"
    return msg


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_os_system(tmp_path, data, protocol):
    (lv, yv), (lt, yt) = data
    marker = tmp_path / "SOMEFILE"
    path = tmp_path / "evil.pkl"
    # hidden inside an otherwise valid structure: refusal must not depend on position
    with open(path, "wb") as f:
        pickle.dump(((lv, yv), (lt, Evil(os.system, f"touch {marker}"))), f, protocol=protocol)
    assert_refused(path, f"{os.system.__module__}.system", marker)  # posix.system on Linux
    # control: the stock unpickler really would run the payload
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_malicious_named_os_system_eval_popen(tmp_path):
    marker = tmp_path / "SOMEFILE"
    # os.system spelt as the module most exploit kits use
    p = tmp_path / "os_system.pkl"
    p.write_bytes(b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR.")
    assert_refused(p, "os.system", marker)
    p = tmp_path / "eval.pkl"
    with open(p, "wb") as f:
        pickle.dump(Evil(eval, f"__import__('os').system('touch {marker}')"), f, protocol=2)
    assert_refused(p, "builtins.eval", marker)
    p = tmp_path / "popen.pkl"
    with open(p, "wb") as f:
        pickle.dump(Evil(subprocess.Popen, ["touch", str(marker)]), f, protocol=4)
    assert_refused(p, "subprocess.Popen", marker)
    # Python-2 spelling: __builtin__.eval maps to builtins.eval and is still refused
    p = tmp_path / "py2eval.pkl"
    p.write_bytes(b"c__builtin__\neval\n(S\"__import__('os').system('touch " + str(marker).encode() + b"')\"\ntR.")
    assert_refused(p, "builtins.eval", marker)
    # getattr-based gadgets are refused too
    p = tmp_path / "getattr.pkl"
    p.write_bytes(b"cbuiltins\ngetattr\n(cbuiltins\nobject\nVmro\ntR.")
    assert_refused(p, "builtins.getattr", marker)


def test_malicious_pt(tmp_path, data):
    (lv, yv), (lt, yt) = data
    marker = tmp_path / "SOMEFILE"
    payload = Reduce(G("os", "system"), (f"touch {marker}",))
    path = write_pt(tmp_path / "evil.pt", ((lv, yv), (lt, payload)))
    assert safe_unpickle.sniff(path) == "torch"
    assert_refused(path, "os.system", marker)
    # a zip whose pickle calls subprocess.Popen directly (another archive prefix, no byteorder)
    buf = io.BytesIO()
    TorchLikePickler(buf, 2).dump(Reduce(G("subprocess", "Popen"), (["touch", str(marker)],)))
    path = tmp_path / "evil2.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x/data.pkl", buf.getvalue())
        zf.writestr("x/data/0", lv.tobytes())
    assert_refused(path, "subprocess.Popen", marker)
    # the legacy format is checked the same way
    path = tmp_path / "evil_legacy.pt"
    path.write_bytes(legacy_stream(Reduce(G("posix", "system"), (f"touch {marker}",))))
    assert_refused(path, "posix.system", marker)


def test_allowed_globals_cannot_be_abused(tmp_path):
    """Allowed names only do what arrays need: no mutation of stand-ins via BUILD, no other
    subtype for numpy's _reconstruct, no persistent ids in plain pickles, no torch modules."""
    cases = {
        # GLOBAL torch._utils._rebuild_tensor_v2, then BUILD a state onto it
        "build_on_standin": b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x08\x00\x00\x00__call__K\x01sb.",
        # numpy _reconstruct with a different subtype
        "reconstruct_subtype": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nccollections\nOrderedDict\nK\x00\x85C\x01b\x87R.",
        # numpy.ndarray itself may not be called
        "ndarray_call": b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a;\x85R.",
        # a persistent id in a plain pickle
        "persistent": b"\x80\x02X\x01\x00\x00\x00xQ.",
        # bytearray(huge int)
        "bytearray_int": b"\x80\x02cbuiltins\nbytearray\nJ\x00\xca\x9a;\x85R.",
    }
    for name, body in cases.items():
        p = tmp_path / f"{name}.pkl"
        p.write_bytes(body)
        with pytest.raises(safe_unpickle.DecodeError) as exc:
            safe_unpickle.load_pickle(p)
        assert str(p) in str(exc.value)
        check_rejected(run_cli(p, "-o", tmp_path / "o.h5"), path=p)
    # numpy.dtype(..., copy=False) would return numpy's shared float32 dtype, which a BUILD could
    # then modify: the loader always makes a fresh copy
    p = tmp_path / "dtype.pkl"
    p.write_bytes(b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x89\x87R.")
    loaded = safe_unpickle.load_pickle(p)
    assert loaded == np.float32 and loaded is not np.dtype(np.float32)
    # a DAG of shared lists (2**80 leaves when expanded) is walked in linear time and refused
    nested = [1.0]
    for _ in range(80):
        nested = [nested, nested]
    p = tmp_path / "laughs.pkl"
    with open(p, "wb") as f:
        pickle.dump(((nested, nested), (nested, nested)), f, protocol=4)
    check_rejected(run_cli(p, "-o", tmp_path / "o.h5"), "not an array", path=p)
    assert run_cli(p, "--inspect").returncode == 0
    # legacy torch files that embed module source code are refused
    buf = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    pickle.dump({"little_endian": True}, buf, protocol=2)
    buf.write(b"\x80\x02(X\x06\x00\x00\x00moduleq\x00tQ.")
    p = tmp_path / "module.pt"
    p.write_bytes(buf.getvalue())
    check_rejected(run_cli(p, "-o", tmp_path / "o.h5"), "module", path=p)
    # a tensor that reaches past its storage
    b = Builder()
    st = b.storage(np.zeros(10, np.float32))
    p = write_pt(tmp_path / "oob.pt", ((Tensor(st, 5, (3, 2), (2, 1)), np.zeros(3, np.int64)),
                                       (np.zeros((3, 2), np.float32), np.zeros(3, np.int64))), builder=b)
    check_rejected(run_cli(p, "-o", tmp_path / "o.h5"), "beyond its storage", path=p)


def test_torch_tar_format_refused(tmp_path):
    import tarfile
    p = tmp_path / "old.pt"
    with tarfile.open(p, "w") as tf:
        info = tarfile.TarInfo("sys_info")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    check_rejected(run_cli(p, "-o", tmp_path / "o.h5"), "torch >= 1.6", path=p)


# ============================================================================ real literature files

ORIG = REAL / "original"
STAGED = REAL / "h5"
CXR = "liorfrenkel1992_calibration/CXR14"


def _sep(d, vl, vy, tl, ty):
    return ["--val-logits", ORIG / d / vl, "--val-labels", ORIG / d / vy, "--test-logits", ORIG / d / tl,
            "--test-labels", ORIG / d / ty]


REAL_CASES = {
    "nncal_densenet40_c10": [ORIG / "zongyuange_Workshop-repository/sample_logits.p"],
    **{f"sctl_{m}_c10_LT": [ORIG / f"SeungjinJung_SCTL/probs_{m}_c10_LT_logits.p"]
       for m in ("densenet40", "resnet110", "resnet110_SD", "resnet_wide28")},
    **{f"cxr14_{m}": _sep(f"{CXR}/{m}", "val_logits.pickle", "val_labels.pickle", "test_logits.pickle",
                          "test_labels.pickle") for m in ("densenet121", "resnet50", "vgg_bn")},
    **{f"netcal_{m.replace('-', '_')}": [ORIG / f"EFS-OpenSource_calibration-framework/{m}.npz", "--split-seed", "0",
                                         "--probs-to-logits"]
       for m in ("wideresnet-16-4-cifar-10", "lenet-5-cifar-10", "densenet-bc-100-cifar-100",
                 "wideresnet-16-4-cifar-100")},
    "wasscal_c10_playground": [ORIG / "kwekuka_wasscal/logits_c10_pretrained.p", "--split-seed", "0"],
    "wasscal_c100_playground": [ORIG / "kwekuka_wasscal/logits_c100_pretrained.p", "--split-seed", "0"],
    **{f"wasscal_{m}": [ORIG / f"kwekuka_wasscal/logits_{m}_pretrainedcy.p", "--split-seed", "0"]
       for m in ("cifar10_resnet20", "cifar10_resnet56", "cifar10_vgg19_bn", "cifar10_mobilenetv2_x1_4",
                 "cifar10_repvgg_a2", "cifar10_shufflenetv2_x2_0", "cifar100_resnet56")},
    "verifiedcal_vgg16_c10": [ORIG / "p-lambda_verified_calibration/cifar_probs.dat", "--split-seed", "0",
                              "--probs-to-logits"],
    "cleanlab_cv_cifar10": ["--logits", ORIG / "cleanlab_label-errors/cifar10_test_set_pyx.npy", "--labels",
                            ORIG / "cleanlab_label-errors/cifar10_test_set_original_labels.npy", "--split-seed", "0",
                            "--probs-to-logits", "--dtype", "float32"],
    **{f"medmnist_{m}_resnet50": ["--logits", ORIG / f"luferrer_expected_cost/{m}_resnet50/scores.npy", "--labels",
                                  ORIG / f"luferrer_expected_cost/{m}_resnet50/targets.npy", "--split-seed", "0",
                                  "--dtype", "float32"]
       for m in ("pathmnist", "pneumoniamnist", "adrenalmnist")},
    "metacal_mnist_cnn": [ORIG / "maxc01_metacal/test-logits.npz", "--split-seed", "0"],
}


@pytest.mark.parametrize("name", sorted(REAL_CASES))
def test_real_files_match_staged_copies(tmp_path, name):
    args = REAL_CASES[name]
    inputs = [a for a in args if isinstance(a, pathlib.Path)]
    staged = STAGED / f"{name}.h5"
    if not all(p.exists() for p in inputs) or not staged.exists():
        pytest.skip(f"real data for {name} not present under {REAL}")
    out = tmp_path / f"{name}.h5"
    convert_ok(*args, "-o", out, "--dataset", "real", "--model", name)
    with h5py.File(staged, "r") as ref, h5py.File(out, "r") as got:
        assert int(got.attrs["num_classes"]) == int(ref.attrs["num_classes"])
        for split in ("val", "test"):
            assert set(got[split]) == set(ref[split]), split
            for dname in ref[split]:
                a, b = got[split][dname][()], ref[split][dname][()]
                assert a.dtype == b.dtype, f"{split}/{dname}: {a.dtype} vs {b.dtype}"
                np.testing.assert_array_equal(a, b, err_msg=f"{split}/{dname}")
    assert "torch" not in sys.modules
