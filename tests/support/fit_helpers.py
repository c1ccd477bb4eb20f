# Helpers shared by the end-to-end tests of the calibrators (test_fit_gradient, test_fit_odir,
# test_fit_ets, test_fit_spline, ...): writing small dumps, the softmax of a dump's splits,
# running `calibench ... --format json`, and the relative tolerance rule.
import json

import h5py
import numpy as np


def tempered_split(rng, n, k, scale, tau):
    """True logits t = scale N(0, I), y ~ softmax(t), observed z = t * tau (float32)."""
    t = scale * rng.normal(size=(n, k))
    p = np.exp(t - t.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.minimum((p.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1), k - 1)
    return (t * tau[None, :]).astype(np.float32), y.astype(np.int32)


def write_dump(path, val, test, k, probs=False):
    """A dump with /val and /test from (values, labels) pairs (logits, or probabilities)."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = k
        for split, (v, y) in (("val", val), ("test", test)):
            f[f"{split}/{'probs' if probs else 'logits'}"] = v
            f[f"{split}/labels"] = y


def write_splits(path, splits, kind="logits"):
    """A dump from {split: (values, labels)}: /<split>/logits (or probs) as given, labels int32,
    no num_classes attribute (binary splits of shape [N] or [N, 1] stay as they are)."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        for name, (values, labels) in splits.items():
            f[f"{name}/{kind}"] = values
            f[f"{name}/labels"] = np.asarray(labels).astype(np.int32)
    return path


def softmax_splits(path):
    """(P_val, labels_val, P_test): the float64 softmax of a logits dump's /val and /test."""
    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    with h5py.File(path) as f:
        return (softmax(f["val/logits"][:].astype(np.float64)), f["val/labels"][:].reshape(-1),
                softmax(f["test/logits"][:].astype(np.float64)))


def run_cli(calibench, *args):
    """(parsed JSON, a context line naming the command); fails the test on a non-zero exit."""
    cmd = [str(a) for a in args] + ["--format", "json"]
    ctx = f"command: calibench {' '.join(cmd)}"
    proc = calibench(*cmd)
    assert proc.returncode == 0, f"{ctx}\n  exit {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout), ctx


def close(got, want, tol):
    return abs(got - want) <= tol * max(1.0, abs(want))
