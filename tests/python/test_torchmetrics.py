# calibench.torchmetrics (python/calibench/torchmetrics.py) against calibench.evaluate (exact),
# torchmetrics' own MulticlassCalibrationError (within float32 rounding), 1 and 2 processes of
# torch.distributed (gloo), reset, empty compute and error messages. Skips without torch and
# torchmetrics (CTest runs it with .venv-peers/bin/python). The file is also the distributed
# worker: `python test_torchmetrics.py --worker RANK WORLD PORT OUT`.
import json
import math
import os
import pickle
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchmetrics")

import calibench  # noqa: E402
import calibench.torchmetrics as cbm  # noqa: E402

SEED = int(os.environ.get("CALIBENCH_TEST_SEED", "20261207"))
# A float32 unit roundoff: torchmetrics' public class sums confidences in float32.
U32 = 2.0 ** -24
# torchmetrics' private _ce_compute on float64 confidences and float64 edges i / M does the
# same arithmetic as calibench in another summation order: a few ulps of the sums.
TM_FLOAT64_TOL = 1e-12


# ------------------------------------------------------------------------------ data


def softmax64(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_data(family, n, k, seed):
    """(values [n, k], labels [n], probs) of one input family; labels follow the logits so that
    accuracy is neither 0 nor 1."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * (3.0 if family != "logits64" else 1.0)
    z[:, 0] += 1.0  # a class imbalance
    y = np.argmax(z + rng.gumbel(size=(n, k)), axis=1).astype(np.int64)
    if family == "logits32":
        return z.astype(np.float32), y, False
    if family == "logits64":
        return z, y, False
    if family == "float16":
        return z.astype(np.float16), y, False
    if family == "ties":  # integer logits: tied maxima and tied confidences
        return np.round(z).astype(np.float32), y, False
    if family == "outliers":  # +-100 logits and confidences of exactly 1
        z[: n // 10] *= 40.0
        return z.astype(np.float32), y, False
    if family == "probs64":
        p = softmax64(z)
        p[p < 1e-3] = 0.0  # exact zeros (NLL may be inf: a None)
        return p / p.sum(axis=1, keepdims=True), y, True
    raise AssertionError(family)


def batches(n, sizes=(1, 37, 500)):
    """Uneven consecutive slices covering range(n): the given sizes, then the rest."""
    out, start = [], 0
    for size in sizes:
        if start + size >= n:
            break
        out.append(slice(start, start + size))
        start += size
    out.append(slice(start, n))
    return out


def same(a, b):
    """Exactly equal, NaN (None) included."""
    a = math.nan if a is None else float(a)
    b = math.nan if b is None else float(b)
    return a == b or (math.isnan(a) and math.isnan(b))


def fed(metric, values, labels, sizes=(1, 37, 500)):
    for s in batches(len(labels), sizes):
        metric.update(torch.from_numpy(values[s]), torch.from_numpy(labels[s]))
    return metric


# ------------------------------------------------------------------------------ keys


def test_metric_keys_are_evaluates_keys():
    z, y, _ = make_data("logits32", 50, 3, SEED)
    keys = [key for key in calibench.evaluate(z, y) if key not in ("n", "k", "conventions")]
    assert sorted(cbm.METRIC_KEYS) == sorted(keys)  # evaluate's dict is sorted by key
    for key, name, _ in cbm.METRICS:
        cls = getattr(cbm, name)
        assert issubclass(cls, cbm.CalibenchMetric) and cls().metric == key and name in cbm.__all__
    m = pickle.loads(pickle.dumps(cbm.SmoothCalibrationError(bins=5, conventions="netcal")))
    assert (type(m), m.metric, m.evaluate_options["bins"]) == (cbm.SmoothCalibrationError, "smece", 5)
    assert cbm.Accuracy.higher_is_better and not cbm.ExpectedCalibrationError.higher_is_better


def test_import_calibench_does_not_import_torch():
    code = "import sys, calibench; assert 'torch' not in sys.modules and 'torchmetrics' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------- (1) equal to evaluate

OPTION_SETS = [
    dict(bins=15, conventions="calibench"),
    dict(bins=10, conventions="torchmetrics"),
    dict(bins=7, conventions="netcal"),
    dict(bins=20, conventions="focal"),
    dict(bins=15, conventions="dirichlet"),
    dict(bins=15, conventions="mixnmatch"),
    dict(bins=1, conventions="guo"),
    dict(bins=12, conventions="verified-calibration", binning="left-closed", adaptive="floor-count",
         classwise_reduction="sum", brier="top-label", nll_clip=1e-7),
]
FAMILIES = [("logits32", 1200, 10), ("logits64", 600, 2), ("float16", 500, 5), ("ties", 800, 4),
            ("outliers", 700, 10), ("probs64", 900, 6), ("logits32", 300, 100)]


@pytest.mark.parametrize("family,n,k", FAMILIES, ids=[f"{f}-{n}x{k}" for f, n, k in FAMILIES])
@pytest.mark.parametrize("options", OPTION_SETS, ids=[o["conventions"] + str(o["bins"]) for o in OPTION_SETS])
def test_all_metrics_equal_evaluate(family, n, k, options):
    values, labels, probs = make_data(family, n, k, SEED + n + k)
    expected = calibench.evaluate(values, labels, probs=probs, **options)
    got = fed(cbm.CalibenchMetrics(probs=probs, **options), values, labels).compute()
    assert list(got) == list(cbm.METRIC_KEYS)
    for key, value in got.items():
        assert value.dtype == torch.float64 and value.ndim == 0
        assert same(value.item(), expected[key]), (SEED, family, options, key, value.item(), expected[key])


@pytest.mark.parametrize("options", OPTION_SETS[:3], ids=[o["conventions"] for o in OPTION_SETS[:3]])
def test_every_named_class_equals_evaluate(options):
    values, labels, probs = make_data("logits32", 900, 7, SEED + 1)
    expected = calibench.evaluate(values, labels, **options)
    for key, name, _ in cbm.METRICS:
        got = fed(getattr(cbm, name)(**options), values, labels, sizes=(400, 3)).compute()
        assert got.dtype == torch.float64 and same(got.item(), expected[key]), (SEED, name, options)
        generic = fed(cbm.CalibenchMetric(key, **options), values, labels, sizes=(899,)).compute()
        assert same(generic.item(), expected[key]), (SEED, key, options)


def test_subset_and_mixed_dtypes_equal_evaluate():
    """A subset of keys as a list or a comma string; float32 then float64 batches (torch.cat
    widens exactly, as evaluate does)."""
    z, y, _ = make_data("logits64", 400, 5, SEED + 2)
    expected = calibench.evaluate(z, y)
    m = cbm.CalibenchMetrics("nll, ece,sce")
    m.update(torch.from_numpy(z[:100].astype(np.float32)), torch.from_numpy(y[:100]))
    m.update(torch.from_numpy(z[100:]), torch.from_numpy(y[100:].astype(np.int32)))
    expected = calibench.evaluate(np.concatenate([z[:100].astype(np.float32).astype(np.float64), z[100:]]), y)
    got = m.compute()
    assert list(got) == ["nll", "ece", "sce"]
    assert all(same(got[key].item(), expected[key]) for key in got)

    # bfloat16 values that require grad: kept as float32 (exact), detached.
    zb = torch.from_numpy(z).to(torch.bfloat16).requires_grad_()
    m = cbm.CalibenchMetrics(["ece", "ace", "nll"])
    m.update(zb[:150], torch.from_numpy(y[:150]))
    m.update(zb[150:], torch.from_numpy(y[150:]))
    expected = calibench.evaluate(zb.detach().float().numpy(), y)
    assert all(same(v.item(), expected[key]) for key, v in m.compute().items())


def test_forward_and_metric_collection():
    from torchmetrics import MetricCollection

    z, y, _ = make_data("logits32", 600, 4, SEED + 3)
    m = cbm.ExpectedCalibrationError(bins=10)
    first = m(torch.from_numpy(z[:200]), torch.from_numpy(y[:200]))  # forward: the batch's value
    assert same(first.item(), calibench.evaluate(z[:200], y[:200], bins=10)["ece"])
    m(torch.from_numpy(z[200:]), torch.from_numpy(y[200:]))
    assert same(m.compute().item(), calibench.evaluate(z, y, bins=10)["ece"])

    collection = MetricCollection({"ece": cbm.ExpectedCalibrationError(conventions="torchmetrics"),
                                   "nll": cbm.NegativeLogLikelihood(nll_clip=1e-3), "all": cbm.CalibenchMetrics()})
    fed(collection, z, y)
    got = collection.compute()
    assert same(got["ece"].item(), calibench.evaluate(z, y, conventions="torchmetrics")["ece"])
    assert same(got["nll"].item(), calibench.evaluate(z, y, nll_clip=1e-3)["nll"])
    full = calibench.evaluate(z, y)
    assert all(same(got[f"all_{key}"].item(), full[key]) for key in cbm.METRIC_KEYS), got.keys()


def test_compute_on_cpu_and_state_copies():
    z, y, _ = make_data("logits32", 300, 3, SEED + 4)
    zt, yt = torch.from_numpy(z.copy()), torch.from_numpy(y.copy())
    m = cbm.BrierScore(compute_on_cpu=True)
    m.update(zt, yt)
    zt.fill_(0.0)  # the caller reuses its buffer: the state is a copy
    yt.fill_(0)
    assert same(m.compute().item(), calibench.evaluate(z, y)["brier"])
    assert all(v.device.type == "cpu" for v in m.values)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device for torch")
def test_gpu_tensors_are_moved_to_the_cpu():
    z, y, _ = make_data("logits32", 500, 10, SEED + 5)
    m = cbm.CalibenchMetrics(["ece", "auroc"]).to("cuda")
    for s in batches(len(y)):
        m.update(torch.from_numpy(z[s]).cuda(), torch.from_numpy(y[s]).cuda())
    assert m.values[0].device.type == "cuda"
    got = m.compute()
    expected = calibench.evaluate(z, y)
    assert all(got[k].device.type == "cuda" and same(got[k].item(), expected[k]) for k in got)


# ------------------------------------------------------- (2) torchmetrics' own class


def edge_rows(bins, k, rng):
    """Float32 probability rows whose confidence is exactly i / M for every i / M > 1 / k
    (dyadic M: torch's float32 linspace edges are then exactly i / M), one correct and one
    wrong each, including rows [1, 0, ...] (torchmetrics' extra slot [1, 1]); plus a correct
    row at each bin's midpoint, so that moving the edge rows to the other side of their edge
    changes the bins' means."""
    conf = [i / bins for i in range(1, bins + 1) if i / bins > 1.0 / k] * 2
    mid = [(i + 0.5) / bins for i in range(bins) if (i + 0.5) / bins > 1.0 / k]
    p = np.empty((len(conf) + len(mid), k), dtype=np.float32)
    y = np.empty(len(p), dtype=np.int64)
    for r, c in enumerate(conf + mid):
        p[r] = (1.0 - c) / (k - 1)
        top = int(rng.integers(k))
        p[r, top] = c
        y[r] = top if r % 2 == 0 or r >= len(conf) else (top + 1) % k
    return p, y


def tm_float32(values, labels, bins, norm, sizes):
    from torchmetrics.classification import MulticlassCalibrationError

    m = MulticlassCalibrationError(num_classes=values.shape[1], n_bins=bins, norm=norm)
    fed(m, values, labels, sizes)
    return float(m.compute())


def tm_float64(probs64, labels, bins, norm):
    """torchmetrics' own binning and formula (_ce_compute) on float64 confidences and edges i / M."""
    from torchmetrics.functional.classification.calibration_error import _ce_compute

    conf = torch.from_numpy(probs64.max(axis=1))
    acc = torch.from_numpy((probs64.argmax(axis=1) == labels).astype(np.float64))
    edges = torch.from_numpy(np.arange(bins + 1) / bins)
    return float(_ce_compute(conf, acc, edges, norm=norm))


def assert_same_slots(conf32, bins):
    """Precondition of the float32 comparison: torch's float32 edges put every confidence in
    the slot calibench's double edges i / M do (else one sample moves a bin by 1/N)."""
    lib = torch.bucketize(torch.from_numpy(conf32), torch.linspace(0, 1, bins + 1), right=True).numpy() - 1
    ours = np.searchsorted(np.arange(bins + 1)[1:] / bins, conf32.astype(np.float64), side="right")
    moved = np.flatnonzero(lib != ours)
    assert moved.size == 0, f"seed {SEED}: confidences between float32 and float64 edges at rows {moved}"


@pytest.mark.parametrize("bins", [10, 15, 16])
@pytest.mark.parametrize("k", [3, 10])
def test_torchmetrics_preset_matches_torchmetrics_on_probabilities(bins, k):
    """Same float32 probabilities to both: the confidences and the slots are identical, so the
    only difference is torchmetrics' float32 arithmetic. Its bin sums are float32 scatter_add_
    of n_b confidences (relative error <= (n_b - 1) u, Higham's bound for recursive summation),
    then a division, a subtraction, the weight n_b / N and the sum over M + 1 slots, each a
    rounding: |difference| <= (max n_b + M + 8) u <= (N + M + 8) u, u = 2^-24 (calibench's
    float64 error is ~1e-16 N). M = 16 adds confidences exactly on every edge and at 1."""
    rng = np.random.default_rng(SEED + bins + k)
    z, y, _ = make_data("logits64", 3000, k, SEED + 10 * k + bins)
    p = softmax64(2.0 * z).astype(np.float32)
    if bins == 16:
        pe, ye = edge_rows(bins, k, rng)
        p, y = np.concatenate([p, pe]), np.concatenate([y, ye])
    assert_same_slots(p.max(axis=1), bins)
    n = len(y)
    tol = (n + bins + 8) * U32
    metric = cbm.CalibenchMetrics(["ece", "mce"], bins=bins, probs=True, conventions="torchmetrics")
    ours = fed(metric, p, y).compute()
    for key, norm in (("ece", "l1"), ("mce", "max")):
        theirs = tm_float32(p, y, bins, norm, sizes=(1, 37, 500))
        assert abs(ours[key].item() - theirs) <= tol, (SEED, key, bins, k, ours[key].item(), theirs, tol)
        # torchmetrics' formula in float64 on the same confidences: the same number to rounding.
        exact = tm_float64(p.astype(np.float64), y, bins, norm)
        assert abs(ours[key].item() - exact) <= TM_FLOAT64_TOL, (SEED, key, bins, k, ours[key].item(), exact)
    if bins == 16:  # the edge rows alone: the preset's slots are torchmetrics', calibench's own are not
        pe, ye = edge_rows(bins, k, rng)
        tol = (len(ye) + bins + 8) * U32
        theirs = tm_float32(pe, ye, bins, "l1", sizes=(len(ye),))
        ours = calibench.evaluate(pe, ye, bins=bins, probs=True, conventions="torchmetrics", metrics=["ece"])["ece"]
        own = calibench.evaluate(pe, ye, bins=bins, probs=True, metrics=["ece"])["ece"]
        assert abs(ours - theirs) <= tol and abs(own - theirs) > 1000 * tol, (SEED, k, ours, own, theirs)


@pytest.mark.parametrize("bins", [10, 15])
def test_torchmetrics_preset_matches_torchmetrics_on_logits(bins):
    """Logits: torchmetrics' float32 softmax moves each confidence by at most ~(K + 4) u
    relative (exp, a sum of K terms, a division), so the means move by that much more than on
    probabilities: tolerance (N + M + K + 12) u. Samples whose float64 confidence lies within
    1e-5 of an edge (far beyond that rounding) are dropped so that both bin them alike."""
    k = 10
    z, y, _ = make_data("logits32", 3000, k, SEED + 20 + bins)
    conf = softmax64(z).max(axis=1)
    edges = np.arange(bins + 1) / bins
    keep = np.abs(conf[:, None] - edges[None, :]).min(axis=1) > 1e-5
    z, y = np.ascontiguousarray(z[keep]), y[keep]
    n = len(y)
    tol = (n + bins + k + 12) * U32
    ours = fed(cbm.CalibenchMetrics(["ece", "mce"], bins=bins, conventions="torchmetrics"), z, y).compute()
    for key, norm in (("ece", "l1"), ("mce", "max")):
        theirs = tm_float32(z, y, bins, norm, sizes=(700,))
        assert abs(ours[key].item() - theirs) <= tol, (SEED, key, bins, ours[key].item(), theirs, tol)


# --------------------------------------------------------------- (3) 1 and 2 processes

# name: (family, n, k, probs, options, shards per world size 2 as [start, stop) per rank)
SCENARIOS = {
    "even": ("logits32", 2000, 10, {}, [(0, 1000), (1000, 2000)]),
    "uneven": ("logits32", 2000, 10, {"conventions": "torchmetrics", "bins": 10}, [(0, 3), (3, 2000)]),
    "rank0_empty": ("logits64", 900, 4, {"conventions": "netcal"}, [(0, 0), (0, 900)]),
    "rank1_empty": ("probs64", 700, 6, {"conventions": "focal"}, [(0, 700), (700, 700)]),
    "float16": ("float16", 800, 5, {"conventions": "dirichlet", "bins": 20}, [(0, 555), (555, 800)]),
}


def scenario_data(name):
    family, n, k, options, _ = SCENARIOS[name]
    values, labels, probs = make_data(family, n, k, SEED + n)
    return values, labels, dict(options, probs=probs)


def worker(rank, world, port, out):
    """One process: every scenario on its shard (world 1: all the data), in sub-batches."""
    import datetime

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=world, timeout=datetime.timedelta(seconds=60))
    results = {}
    warnings.simplefilter("ignore")  # torchmetrics warns about compute before update on empty ranks
    for name, (_, n, _, _, shards) in SCENARIOS.items():
        values, labels, options = scenario_data(name)
        start, stop = shards[rank] if world == 2 else (0, n)
        every, ece = cbm.CalibenchMetrics(**options), cbm.ExpectedCalibrationError(**options)
        for s in batches(stop - start, (17, 250)) if stop > start else []:
            part = slice(start + s.start, start + s.stop)
            for m in (every, ece):
                m.update(torch.from_numpy(values[part]), torch.from_numpy(labels[part]))
        got = {key: v.item() for key, v in every.compute().items()}
        got["ece_class"] = ece.compute().item()
        results[name] = got
    # Errors, agreed by both processes (neither hangs): different K, and no samples anywhere.
    m = cbm.AUROC()
    m.update(torch.zeros(4, 3 + rank * (world - 1)), torch.zeros(4, dtype=torch.int64))
    results["k_mismatch"] = error_text(m.compute)
    results["no_samples"] = error_text(cbm.NegativeLogLikelihood().compute)
    torch.distributed.destroy_process_group()
    with open(out, "w") as f:
        json.dump(results, f)


def error_text(fn):
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_and_two_processes_equal_one_process(tmp_path):
    """Each rank updates with its contiguous shard (uneven sizes, an empty rank, float16); every
    rank's compute() equals evaluate on the concatenation rank 0 || rank 1, which is all the
    data in order, exactly; world size 1 (a process group of one) too."""
    runs = {}
    for world in (1, 2):
        port = free_port()
        for rank in range(world):
            out = tmp_path / f"w{world}r{rank}.json"
            cmd = [sys.executable, __file__, "--worker", str(rank), str(world), str(port), str(out)]
            runs[(world, rank)] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                    text=True), out)
    logs = {}
    for key, (proc, _) in runs.items():
        try:
            logs[key] = proc.communicate(timeout=240)[0]
        except subprocess.TimeoutExpired:
            for other, _ in runs.values():
                other.kill()
            raise
    for key, (proc, _) in runs.items():
        assert proc.returncode == 0, f"worker world {key[0]} rank {key[1]} exited {proc.returncode}:\n{logs[key]}"
    results = {key: json.loads(out.read_text()) for key, (_, out) in runs.items()}
    for name in SCENARIOS:
        values, labels, options = scenario_data(name)
        expected = calibench.evaluate(values, labels, **options)
        for key, got in results.items():
            for metric in cbm.METRIC_KEYS:
                assert same(got[name][metric], expected[metric]), (SEED, name, key, metric, got[name][metric])
            assert same(got[name]["ece_class"], expected["ece"]), (SEED, name, key)
    k_msg = "AUROC: the processes hold values with different class counts (from 3 to 4)"
    assert results[(2, 0)]["k_mismatch"] == results[(2, 1)]["k_mismatch"] == k_msg
    assert results[(1, 0)]["k_mismatch"] is None
    for key in results:
        assert results[key]["no_samples"].startswith("NegativeLogLikelihood: compute() found no samples")


# -------------------------------------------------- (4) reset, empty compute, errors


def test_reset_and_empty_compute():
    z, y, _ = make_data("logits32", 400, 3, SEED + 6)
    m = cbm.ExpectedCalibrationError()
    with pytest.warns(UserWarning, match="before the ``update``"), \
            pytest.raises(ValueError, match=r"^ExpectedCalibrationError: compute\(\) found no samples"):
        m.compute()
    m.update(torch.from_numpy(z[:100]), torch.from_numpy(y[:100]))
    assert same(m.compute().item(), calibench.evaluate(z[:100], y[:100])["ece"])
    m.reset()
    assert m.values == [] and m.labels == []
    m.update(torch.from_numpy(z[100:, :2]), torch.from_numpy(y[100:] % 2))  # another K after reset
    assert same(m.compute().item(), calibench.evaluate(z[100:, :2], y[100:] % 2)["ece"])
    m.reset()
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="found no samples"):
        m.compute()


def engine_message(values, labels, **options):
    with pytest.raises(ValueError) as e:
        calibench.evaluate(values, labels, **options)
    return str(e.value)


@pytest.mark.parametrize("case", ["nan", "inf", "label_high", "label_negative", "probs_sum", "probs_negative"])
def test_engine_input_errors_propagate(case):
    """calibench's own message, naming the row in the concatenation of the updates."""
    z, y, _ = make_data("logits32", 20, 4, SEED + 7)
    probs = case.startswith("probs")
    if probs:
        z = softmax64(z).astype(np.float32)
    if case == "nan":
        z[13, 1] = np.nan
    elif case == "inf":
        z[8, 3] = -np.inf
    elif case == "label_high":
        y[7] = 12
    elif case == "label_negative":
        y[19] = -1
    elif case == "probs_sum":
        z[11, 0] += 0.5
    else:
        z[4, 2] = -0.25
    message = engine_message(z, y, probs=probs)
    m = cbm.CalibenchMetrics(probs=probs)
    fed(m, z, y, sizes=(5, 5))
    with pytest.raises(ValueError) as e:
        m.compute()
    assert str(e.value) == message


def test_bad_construction_and_update_arguments():
    with pytest.raises(ValueError, match=r"unknown metric 'ecee' \(metrics are: accuracy, ece,"):
        cbm.CalibenchMetric("ecee")
    with pytest.raises(ValueError, match="unknown metric 'n'"):
        cbm.CalibenchMetrics(["ece", "n"])
    with pytest.raises(ValueError, match="names a metric twice"):
        cbm.CalibenchMetrics("ece,ece")
    with pytest.raises(ValueError, match="CalibenchMetrics computes several"):
        cbm.CalibenchMetric(["ece", "mce"])
    for options in (dict(conventions="nosuch"), dict(bins=0), dict(bins=15.5), dict(binning="sideways"),
                    dict(nll_clip=0.7)):
        message = engine_message([[1.0, 0.0], [0.0, 1.0]], [0, 1], metrics=["accuracy"], **options)
        with pytest.raises(ValueError) as e:
            cbm.ExpectedCalibrationError(**options)
        assert str(e.value) == message, options
    with pytest.raises(ValueError, match="Unexpected keyword"):  # torchmetrics' own check
        cbm.BrierScore(bootstrap=100)

    m = cbm.Accuracy()
    with pytest.raises(ValueError, match=r"^Accuracy: preds: expected rank 2 \[N, K\], found shape \[5\]"):
        m.update(torch.zeros(5), torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"target: expected \[N\] labels with N = 5 .*found shape \[4\]"):
        m.update(torch.zeros(5, 3), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="preds: expected floating-point logits or probabilities, found torch.int64"):
        m.update(torch.zeros(5, 3, dtype=torch.int64), torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match="target: expected integer labels, found torch.float32"):
        m.update(torch.zeros(5, 3), torch.zeros(5))
    m.update(torch.zeros(5, 3), torch.zeros(5, 1, dtype=torch.uint8))
    with pytest.raises(ValueError, match="preds: 4 classes, but the earlier updates had 3"):
        m.update(torch.zeros(5, 4), torch.zeros(5, dtype=torch.int64))
    assert m.compute().item() == 1.0  # ties: the lowest index, class 0


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
