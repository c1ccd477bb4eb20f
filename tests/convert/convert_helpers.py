# What the converter suites share: running experiments/convert/calibench_convert.py in-process.
import io
import pathlib
import sys

import h5py

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "experiments" / "convert"))
import calibench_convert  # noqa: E402


def convert(*args):
    """Run the converter in-process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        status = calibench_convert.main([str(a) for a in args])
    finally:
        sys.stdout, sys.stderr = old
    return status, out.getvalue(), err.getvalue()


def convert_ok(*args):
    status, out, err = convert(*args)
    assert status == 0, f"conversion failed: {err}"
    return out, err


def read_dump(path):
    """(root attributes, {dataset path: array}) of a written dump."""
    with h5py.File(path, "r") as f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        data = {}
        f.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return attrs, data
