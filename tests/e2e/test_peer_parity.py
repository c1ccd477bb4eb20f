"""Parity of `calibench eval --conventions NAME` with the peer libraries themselves.

The libraries are installed from PyPI into .venv-peers/ by scripts/setup_peers.sh; CTest runs
this file with that interpreter (without it every test here skips). tests/peers/peer_numbers.py
computes each library's numbers; tests/peers/README.md lists versions, the mapping below and
every documented difference.

  preset                 calibench key     library number
  torchmetrics           ece, rmsce, mce   torchmetrics _ce_compute (the code of
                                           multiclass_calibration_error) l1, l2, max on float64
                                           confidences; the public function computes in
                                           float32: test_torchmetrics_public_is_float32
  netcal                 ece               ECE(bins=M).measure          (equal-width)
                         adaece            ECE(bins=M, equal_intervals=False).measure
                         ace_unweighted    ACE(bins=M).measure
  verified-calibration   ece               get_ece
                         adaece            get_ece_em
                         rmsce_debiased    _get_ce(p, y, 2, True, M, get_equal_prob_bins, 'top-label')
                         sce               marginal plugin L1, equal-width bins (lower_bound_scaling_ce)
  any                    smece             relplot smECE(confidence, correct)
  mixnmatch              adaece, kde_ece   Mix-n-Match ece_hist_binary, ece_kde_binary
  focal                  ece, adaece, sce  focal_calibration ECELoss, AdaptiveECELoss, ClasswiseECELoss
  dirichlet              sce, brier        Dirichlet classwise_ECE (digitize, sum), Brier / K

Tolerance 1e-6 everywhere (observed: below 1e-13 for the float64 libraries, below 3e-7 for
focal_calibration's and Mix-n-Match's float32 accumulators). Inputs: seeded random logits of
several shapes, probability inputs with confidences exactly on edges, exactly 1.0, exact zeros,
two classes present, a class absent, and the real dumps in ../shared/data/real/h5 (skipped when
absent)."""
from __future__ import annotations

import functools
import json
import math
import pathlib
import sys

import h5py
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
REAL_DIR = (REPO / ".." / "shared" / "data" / "real" / "h5").resolve()
sys.path.insert(0, str(REPO / "tests" / "peers"))

try:
    import calibration  # noqa: F401  uncertainty-calibration
    import KDEpy  # noqa: F401
    import netcal.metrics  # noqa: F401
    import relplot  # noqa: F401
    import torch
    import torchmetrics  # noqa: F401
except ImportError as e:  # pragma: no cover - the skip is the result
    pytest.skip(f"peer libraries are not importable by {sys.executable} ({e}); run "
                "scripts/setup_peers.sh and use .venv-peers/bin/python -m pytest",
                allow_module_level=True)

import peer_numbers as pn  # noqa: E402

TOL = 1e-6

# (preset, calibench key, library, library key). netcal's multiclass keys are replaced by its
# top-label path on splits with <= 2 distinct labels, Mix-n-Match's by its top-label branch for
# K == 2 (see peer_key); the raw behaviour there has its own tests below.
PARITY = [
    ("torchmetrics", "ece", "torchmetrics", "l1_f64"),
    ("torchmetrics", "rmsce", "torchmetrics", "l2_f64"),
    ("torchmetrics", "mce", "torchmetrics", "max_f64"),
    ("netcal", "ece", "netcal", "ece"),
    ("netcal", "adaece", "netcal", "ece_em"),
    ("netcal", "ace_unweighted", "netcal", "ace"),
    ("verified-calibration", "ece", "verified_calibration", "get_ece"),
    ("verified-calibration", "adaece", "verified_calibration", "get_ece_em"),
    ("verified-calibration", "rmsce_debiased", "verified_calibration", "debiased_l2"),
    ("verified-calibration", "sce", "verified_calibration", "marginal_l1"),
    ("verified-calibration", "smece", "relplot", "smece"),
    ("mixnmatch", "adaece", "mixnmatch", "ece_hist"),
    ("mixnmatch", "adaece", "mixnmatch", "ece_hist_f32"),
    ("mixnmatch", "kde_ece", "mixnmatch", "ece_kde"),
    ("mixnmatch", "kde_ece", "mixnmatch", "ece_kde_f32"),
    ("focal", "ece", "focal", "ece"),
    ("focal", "adaece", "focal", "adaece"),
    ("focal", "sce", "focal", "sce"),
    ("dirichlet", "sce", "dirichlet", "classwise_ece_sum"),
    ("dirichlet", "brier", "dirichlet", "brier_over_k"),
]
PRESETS = sorted({p for p, _, _, _ in PARITY})


DUPLICATE_EDGES = "raises ValueError: The smallest edge difference is numerically 0."


def peer_key(lib: str, key: str, labels: np.ndarray, k: int, peers=None) -> str:
    if (lib, key) == ("netcal", "ece_em") and peers is not None:
        if any(peers["netcal"][kk] == DUPLICATE_EDGES for kk in ("ece_em", "ece_em_top")):
            return "ece_em_distinct_edges"  # test_netcal_equal_mass_duplicate_edges_raise
    if lib == "netcal" and len(np.unique(labels)) <= 2:
        return key + "_top"  # netcal's binary path: test_netcal_two_labels_*
    if lib == "mixnmatch" and k == 2:
        return key + "_top"  # theirs is positive-class for K == 2: test_mixnmatch_binary_*
    return key


# --------------------------------------------------------------------------------- helpers


def write_dump(path: pathlib.Path, values: np.ndarray, labels: np.ndarray, probs: bool) -> None:
    """Both required splits with the same data; probabilities as float64 /<split>/probs,
    logits as float32 /<split>/logits (the usual dump)."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = values.shape[1]
        for split in ("val", "test"):
            if probs:
                f[f"{split}/probs"] = values.astype(np.float64)
            else:
                f[f"{split}/logits"] = values.astype(np.float32)
            f[f"{split}/labels"] = labels.astype(np.int32)


def run_cli(calibench, path, preset, bins, split="test", extra=()) -> dict:
    args = ["eval", path, "--split", split, "--bins", bins, "--format", "json",
            "--conventions", preset, *extra]
    proc = calibench(*args)
    cmd = "calibench " + " ".join(map(str, args))
    assert proc.returncode == 0, f"{cmd}\nexit {proc.returncode}\nstderr: {proc.stderr}"
    out = json.loads(proc.stdout)
    out["_cmd"] = cmd
    return out


def check_parity(calibench, path, values, labels, is_probs, bins, split="test", skip=()):
    """Every PARITY row on one split but the (preset, key) pairs in `skip` (which the caller
    checks otherwise); returns the list of failures (empty when all agree)."""
    probs = np.asarray(values, np.float64) if is_probs else pn.softmax64(values)
    peers = pn.peer_numbers(probs, labels, True, bins, marginal_default=False)
    cli = {p: run_cli(calibench, path, p, bins, split) for p in PRESETS}
    bad = []
    for preset, key, lib, lkey in PARITY:
        if (preset, key) in skip:
            continue
        lkey = peer_key(lib, lkey, labels, probs.shape[1], peers)
        a, b = cli[preset][key], peers[lib][lkey]
        if not isinstance(b, float) or a is None or not abs(a - b) <= TOL:
            diff = abs(a - b) if isinstance(b, float) and a is not None else "n/a"
            bad.append(f"{cli[preset]['_cmd']}: {key}={a!r} vs {lib}.{lkey}={b!r} |diff|={diff}")
    return bad


def conf_rows(conf: np.ndarray, k: int) -> np.ndarray:
    """Probability rows whose top label is column 0 with exactly `conf` (the rest spread
    evenly; conf >= 1/k keeps column 0 the argmax, ties going to the lowest index)."""
    rest = (1.0 - conf) / (k - 1)
    p = np.repeat(rest[:, None], k, axis=1)
    p[:, 0] = conf
    return p


def labels_for(correct: np.ndarray, k: int, rng) -> np.ndarray:
    """Labels making the column-0 prediction correct where `correct`, else another class."""
    return np.where(correct, 0, rng.integers(1, k, len(correct)))


# ------------------------------------------------------------------- seeded random logits

# (seed, N, K, bins): several shapes, including K = 2, K = 100 and N < M.
RANDOM_CASES = [
    (101, 2000, 10, 15),
    (102, 3000, 3, 10),
    (103, 1000, 100, 15),
    (104, 2500, 2, 15),
    (105, 600, 7, 20),
    (106, 50, 4, 15),
    (107, 10, 3, 15),
    (108, 4000, 5, 1),
]


def gen_logits(rng, n, k):
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 2.0
    z[np.arange(n), y] += 2.5
    return z.astype(np.float32).astype(np.float64), y


@pytest.mark.parametrize("seed,n,k,bins", RANDOM_CASES,
                         ids=[f"seed{c[0]}-{c[1]}x{c[2]}-M{c[3]}" for c in RANDOM_CASES])
def test_random_logits_match_libraries(calibench, tmp_path, seed, n, k, bins):
    z, y = gen_logits(np.random.default_rng(seed), n, k)
    path = tmp_path / "d.h5"
    write_dump(path, z, y, probs=False)
    bad = check_parity(calibench, path, z, y, False, bins)
    assert not bad, f"seed={seed} shape=[{n}, {k}] bins={bins}\n" + "\n".join(bad)


def test_random_float32_probabilities_match_libraries(calibench, tmp_path):
    """Probability input (float32-exact values, some exact zeros): every library on the values
    as given; torchmetrics' public float32 function agrees here too, since its .float() cast
    is exact on these confidences and N is small enough for its float32 sums."""
    rng = np.random.default_rng(201)
    n, k, bins = 400, 6, 15
    p = rng.dirichlet(np.full(k, 0.4), n)
    p[p < 0.02] = 0.0
    p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
    y = np.array([rng.choice(k, p=row / row.sum()) for row in p])
    path = tmp_path / "p.h5"
    write_dump(path, p, y, probs=True)
    bad = check_parity(calibench, path, p, y, True, bins)
    assert not bad, "\n".join(bad)
    tm = pn.torchmetrics_numbers(p, y, bins)
    cli = run_cli(calibench, path, "torchmetrics", bins)
    for key, norm in (("ece", "l1"), ("rmsce", "l2"), ("mce", "max")):
        assert abs(cli[key] - tm[norm]) <= TOL, f"{cli['_cmd']}: {key}={cli[key]} vs public {tm[norm]}"


# ------------------------------------------------------------------------ the real dumps

REAL_DUMPS = sorted(REAL_DIR.glob("*.h5")) if REAL_DIR.is_dir() else []


@functools.lru_cache(maxsize=None)
def _real(dump: str, split: str):
    return pn.load_split(dump, split)


@pytest.mark.skipif(not REAL_DUMPS, reason=f"no real dumps in {REAL_DIR}")
@pytest.mark.parametrize("split", ["test", "val"])
@pytest.mark.parametrize("dump", REAL_DUMPS, ids=[p.stem for p in REAL_DUMPS])
def test_real_dump_matches_libraries(calibench, dump, split):
    values, labels, is_probs = _real(str(dump), split)
    bad = check_parity(calibench, dump, values, labels, is_probs, 15, split)
    assert not bad, f"{dump.name} /{split}\n" + "\n".join(bad)


@pytest.mark.skipif(not REAL_DUMPS, reason=f"no real dumps in {REAL_DIR}")
@pytest.mark.parametrize("dump", REAL_DUMPS, ids=[p.stem for p in REAL_DUMPS])
def test_torchmetrics_public_is_float32(calibench, tmp_path, dump):
    """torchmetrics' multiclass_calibration_error casts the confidences to float32
    (`confidences.float()`), bins them against float32 torch.linspace edges and sums in float32
    (scatter_add_). On the real dumps that moves it away from the float64 number by up to
    ~2e-5 (ECE) and, where confidences within 3e-8 of 1 round to 1.0 and so move into its
    extra slot [1, 1], by up to ~2e-2 (RMSCE). The whole gap is float32: on the float32-rounded
    probabilities (the confidences the library sees) calibench --conventions torchmetrics puts
    the same samples in every slot as the library except those whose float32 confidence lies
    between torch's float32 edge and i / M (M = 15: edges 3 and 6..10 differ from float32(i/M);
    one sample of sctl_resnet110_SD_c10_LT), and the numbers differ by float32 summation
    (bounded by n * 2^-24) plus 1/n for each such sample."""
    values, labels, _ = _real(str(dump), "test")
    p = pn.softmax64(values)
    bins = 15
    tm = pn.torchmetrics_numbers(p, labels, bins)
    p32 = p.astype(np.float32).astype(np.float64)
    path = tmp_path / "p32.h5"
    write_dump(path, p32, labels, probs=True)
    cli = run_cli(calibench, path, "torchmetrics", bins, extra=["--reliability"])
    n = len(labels)
    c32 = pn.top_label(p, labels)[0].astype(np.float32)
    t32 = torch.linspace(0, 1, bins + 1)
    slot_lib = torch.bucketize(torch.from_numpy(c32), t32, right=True).numpy() - 1  # their line
    exact = np.arange(bins + 1) / bins
    slot_cb = np.searchsorted(exact[1:], c32.astype(np.float64), side="right")  # e_1..e_M <= v
    cli_counts = [r["count"] for r in cli["reliability"]]
    assert cli_counts == np.bincount(slot_cb, minlength=bins + 1).tolist(), cli["_cmd"]
    moved = np.flatnonzero(slot_lib != slot_cb)
    for i in moved:  # each one sits between the two versions of one edge
        j = max(slot_lib[i], slot_cb[i])
        lo, hi = sorted((float(t32[j]), exact[j]))
        assert lo <= c32[i] < hi or lo < c32[i] <= hi, (i, c32[i], j, lo, hi)
    tol = n * 2.0 ** -24 + len(moved) / n
    for key, norm in (("ece", "l1"), ("rmsce", "l2"), ("mce", "max")):
        if norm == "max" and len(moved):
            continue  # one sample can move a bin's |acc - conf| by far more than 1/n
        assert abs(cli[key] - tm[norm]) <= tol, (
            f"{cli['_cmd']}: {key}={cli[key]} vs public torchmetrics {norm}={tm[norm]} "
            f"(tol {tol}, {len(moved)} samples between float32 and float64 edges)")


# ------------------------------------------------------------------------ exact values


def _edge_dump(tmp_path, bins, k, name, extra_conf=()):
    """Confidences exactly i/M for every i with i/M >= 1/k (twice each: one correct, one
    wrong, and a third correct one on odd i so no bin's |acc - conf| cancels), plus extra."""
    rng = np.random.default_rng(300 + bins)
    vals = [i / bins for i in range(1, bins + 1) if i / bins >= 1.0 / k]
    conf, corr = [], []
    for i, v in enumerate(vals):
        conf += [v, v] + ([v] if i % 2 else [])
        corr += [True, False] + ([True] if i % 2 else [])
    for v in extra_conf:
        conf.append(v)
        corr.append(True)
    conf, corr = np.array(conf), np.array(corr)
    p = conf_rows(conf, k)
    y = labels_for(corr, k, rng)
    path = tmp_path / f"{name}.h5"
    write_dump(path, p, y, probs=True)
    return path, p, y, conf, corr.astype(np.float64)


@pytest.mark.parametrize("bins", [5, 10, 15, 20])
def test_confidence_exactly_on_an_edge(calibench, tmp_path, bins):
    """Confidences exactly i/M (the double nearest i/M). calibench's equal-width rules compare
    with e_i = i / M in double (docs/metrics.md); a library whose edge is another double lands
    those values in the neighbouring bin:
      - uncertainty-calibration (edges i * 1.0 / M) and the Dirichlet code: the same number.
      - netcal: edges np.linspace(0, 1, M + 1) = i * (1 / M), which differ from i / M for
        M = 5 (i = 3), 10 (3, 6, 7), 20 (3, 6, 7, 12, 14, 17, 19), none for M = 15; its ECE
        is netcal's own binning with those edges, calibench's is netcal's binning with i / M.
      - torchmetrics: float32 linspace edges against float32 confidences; the public function
        equals the library's code on those, calibench equals it on float64 i / M edges. Its
        float32 edges differ from float32(i/M) for M = 15 (i = 3, 6..10) and M = 20 (i = 9).
      - focal_calibration: float32 linspace edges against float64 confidences; where the
        float32 edge is below i/M (M = 10: i = 7, 9; M = 15: 8, 9, 10; M = 20: 7, 13, 14, 18,
        19) the value i/M goes one bin up; calibench equals their loop with float64 i / M edges.
    Where the edges coincide (netcal M = 15; torchmetrics M = 5, 10; focal M = 5) the library's
    own number is asserted to equal calibench's."""
    k = 5
    path, p, y, conf, corr = _edge_dump(tmp_path, bins, k, "edges")
    exact = np.arange(bins + 1) / bins

    vc = pn.verified_calibration_numbers(p, y, bins, marginal_default=False)
    cli = run_cli(calibench, path, "verified-calibration", bins)
    assert abs(cli["ece"] - vc["get_ece"]) <= TOL, (cli["_cmd"], cli["ece"], vc)
    assert abs(cli["rmsce_debiased"] - vc["debiased_l2"]) <= TOL, (cli["_cmd"], vc)
    assert abs(cli["sce"] - vc["marginal_l1"]) <= TOL, (cli["_cmd"], vc)

    cli = run_cli(calibench, path, "netcal", bins)
    lin = np.linspace(0, 1, bins + 1)
    netcal_public = pn.netcal_numbers(p, y, bins)[peer_key("netcal", "ece", y, k)]
    assert abs(netcal_public - pn.netcal_binned(conf, corr, lin)) <= 1e-12
    assert abs(cli["ece"] - pn.netcal_binned(conf, corr, exact)) <= TOL, cli["_cmd"]
    if np.array_equal(lin, exact):
        assert abs(cli["ece"] - netcal_public) <= TOL, (cli["_cmd"], netcal_public)
    # Which samples move: exactly those at i/M where linspace's edge i is another double.
    bins_lin = np.searchsorted(lin[1:-1], conf, side="right")
    bins_exact = np.searchsorted(exact[1:-1], conf, side="right")
    counts_nc = pn.netcal_binned(conf, corr, lin, counts=True)
    assert counts_nc == np.bincount(bins_lin, minlength=bins).tolist()
    cli_rel = run_cli(calibench, path, "netcal", bins, extra=["--reliability"])["reliability"]
    assert [r["count"] for r in cli_rel] == np.bincount(bins_exact, minlength=bins).tolist()
    moved = set(conf[bins_lin != bins_exact].tolist())
    assert moved == {e for e, l in zip(exact[1:-1], lin[1:-1]) if l != e and e in conf}, moved

    cli = run_cli(calibench, path, "torchmetrics", bins)
    tm = pn.torchmetrics_numbers(p, y, bins)
    c32 = conf.astype(np.float32)
    for key, norm in (("ece", "l1"), ("rmsce", "l2"), ("mce", "max")):
        assert abs(tm[norm] - pn.torchmetrics_ce(c32, corr, bins, norm)) <= TOL
        assert abs(cli[key] - pn.torchmetrics_ce(conf, corr, exact, norm)) <= TOL, cli["_cmd"]
        t32 = torch.linspace(0, 1, bins + 1).numpy()
        if np.array_equal(t32, exact.astype(np.float32)):
            assert abs(cli[key] - tm[norm]) <= TOL, (cli["_cmd"], key, tm)

    cli = run_cli(calibench, path, "focal", bins)
    assert abs(cli["ece"] - pn.focal_ece(p, y, bins, edges=exact)) <= TOL, cli["_cmd"]
    assert abs(cli["sce"] - pn.focal_sce(p, y, bins, edges=exact, num_classes=k)) <= TOL, cli["_cmd"]
    t32 = torch.linspace(0, 1, bins + 1).tolist()
    if all(t >= e for t, e in zip(t32, exact)):  # no value i/M moves up a bin
        assert abs(cli["ece"] - pn.focal_ece(p, y, bins)) <= TOL, cli["_cmd"]

    # The Dirichlet code bins the class columns at numpy's linspace(0, 1, M) edges.
    d = np.linspace(0, 1, bins)
    dp = conf_rows(np.clip(d[d >= 1.0 / k], 1.0 / k, 1.0), k)
    dy = labels_for(np.arange(len(dp)) % 3 != 1, k, np.random.default_rng(9))
    dpath = tmp_path / "digitize.h5"
    write_dump(dpath, dp, dy, probs=True)
    cli = run_cli(calibench, dpath, "dirichlet", bins)
    dn = pn.dirichlet_numbers(dp, dy, bins)
    assert abs(cli["sce"] - dn["classwise_ece_sum"]) <= TOL, (cli["_cmd"], dn)
    assert abs(cli["brier"] - dn["brier_over_k"]) <= TOL, (cli["_cmd"], dn)


def test_confidence_exactly_one(calibench, tmp_path):
    """One-hot rows (confidence exactly 1.0, some wrong) among float32-exact others. Every
    library agrees with its preset, torchmetrics' public float32 function included:
    torchmetrics puts 1.0 alone in its extra slot [1, 1] (bucketize(right=True) - 1 into M + 1
    accumulators; calibench's `torchmetrics` rule), netcal clips it to 1 - 2^-52 in its last
    bin, the others keep it in the last bin (lo, 1]; the Dirichlet digitize gives 1.0 its own
    slot. netcal's equal-mass ECE raises here (the 1.0s make equal quantile edges:
    test_netcal_equal_mass_duplicate_edges_raise), so adaece is compared with netcal's binning
    on the distinct edges."""
    rng = np.random.default_rng(401)
    n, k, bins = 300, 4, 15
    conf = np.where(rng.uniform(size=n) < 0.3, 1.0,
                    rng.uniform(0.26, 1.0, n).astype(np.float32).astype(np.float64))
    corr = rng.uniform(size=n) < np.where(conf == 1.0, 0.7, conf)
    p = conf_rows(conf, k)
    p[conf == 1.0] = np.eye(k)[0]
    y = labels_for(corr, k, rng)
    path = tmp_path / "one.h5"
    write_dump(path, p, y, probs=True)
    bad = check_parity(calibench, path, p, y, True, bins)
    assert not bad, "\n".join(bad)
    assert pn.netcal_numbers(p, y, bins)["ece_em"] == DUPLICATE_EDGES
    tm = pn.torchmetrics_numbers(p, y, bins)
    cli = run_cli(calibench, path, "torchmetrics", bins, extra=["--reliability"])
    assert cli["reliability"][-1]["count"] == int((conf == 1.0).sum())
    for key, norm in (("ece", "l1"), ("rmsce", "l2"), ("mce", "max")):
        assert abs(cli[key] - tm[norm]) <= TOL, (cli["_cmd"], key, tm)


def test_zero_probabilities_in_class_columns(calibench, tmp_path):
    """Exact zeros in the class columns (the classwise metrics bin every column): focal's
    ClasswiseECELoss (lo < p <= hi) puts p = 0 in no bin but counts it in N (calibench's
    guo-strict), uncertainty-calibration's searchsorted and the Dirichlet digitize put it in
    the first bin (right-closed, digitize-linspace). All three equal their preset's sce."""
    rng = np.random.default_rng(501)
    n, k, bins = 500, 5, 10
    p = rng.dirichlet(np.full(k, 0.3), n)
    p[rng.uniform(size=(n, k)) < 0.4] = 0.0
    p[p.sum(axis=1) == 0, 0] = 1.0
    p = p / p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    path = tmp_path / "zeros.h5"
    write_dump(path, p, y, probs=True)
    bad = check_parity(calibench, path, p, y, True, bins)
    assert not bad, "\n".join(bad)
    assert (p == 0).mean() > 0.3


# ------------------------------------------------------------- label sets of a test split


def _two_class_split(tmp_path, k, present, seed=601, n=800):
    rng = np.random.default_rng(seed)
    y = rng.choice(present, n)
    z = rng.normal(size=(n, k)) * 1.5
    z[np.arange(n), y] += 2.0
    z = z.astype(np.float32).astype(np.float64)
    path = tmp_path / f"two_{k}.h5"
    write_dump(path, z, y, probs=False)
    return path, z, y


def test_netcal_two_labels_of_many_raises(calibench, tmp_path):
    """A test split with only two of K = 5 classes present: netcal decides binary vs
    multiclass from the labels (<= 2 distinct values -> binary) and then raises RuntimeError
    on 5 probability columns. Its binning on the top label (ECE().measure(confidence,
    correct)) equals calibench, and so do the other libraries."""
    path, z, y = _two_class_split(tmp_path, 5, present=(1, 4))
    p = pn.softmax64(z)
    nc = pn.netcal_numbers(p, y, 15)
    assert nc["ece"].startswith("raises RuntimeError"), nc
    assert nc["ece_em"].startswith("raises RuntimeError"), nc
    bad = check_parity(calibench, path, z, y, False, 15)
    assert not bad, "\n".join(bad)


def test_netcal_two_labels_binary_is_positive_class(calibench, tmp_path):
    """K = 2: netcal's ECE on the probabilities measures column 1 against the label
    (positive-class reliability), not the top label; so do torchmetrics'
    binary_calibration_error and Mix-n-Match for K = 2. calibench (every preset) measures the
    top label, which netcal gives for (confidence, correct)."""
    from torchmetrics.functional.classification import binary_calibration_error

    path, z, y = _two_class_split(tmp_path, 2, present=(0, 1))
    p = pn.softmax64(z)
    bins = 15
    nc = pn.netcal_numbers(p, y, bins)
    assert abs(nc["ece"] - pn.netcal_binned(p[:, 1], y, np.linspace(0, 1, bins + 1))) <= 1e-12
    cli = run_cli(calibench, path, "netcal", bins)
    assert abs(cli["ece"] - nc["ece_top"]) <= TOL
    assert abs(cli["ece"] - nc["ece"]) > 1e-3, "positive-class and top-label ECE coincide here"
    tm_bin = float(binary_calibration_error(torch.from_numpy(np.ascontiguousarray(p[:, 1])),
                                            torch.from_numpy(y),
                                            n_bins=bins))
    assert abs(tm_bin - pn.torchmetrics_ce(p[:, 1], y.astype(np.float64), bins)) <= 1e-12
    cli = run_cli(calibench, path, "torchmetrics", bins)
    assert abs(cli["ece"] - tm_bin) > 1e-3
    bad = check_parity(calibench, path, z, y, False, bins)
    assert not bad, "\n".join(bad)


def test_mixnmatch_binary_is_positive_class(calibench, tmp_path):
    """Mix-n-Match ece_hist_binary / ece_kde_binary with K = 2 take column 1 against the label
    ("joint calibration for binary cases") and keep float64 confidences against float32 bin
    edges; calibench's mixnmatch preset is their top-label branch (taken for K != 2) for every
    K."""
    path, z, y = _two_class_split(tmp_path, 2, present=(0, 1), seed=602)
    p = pn.softmax64(z)
    mm = pn.mixnmatch_numbers(p, y, 15)
    cli = run_cli(calibench, path, "mixnmatch", 15)
    assert abs(cli["adaece"] - mm["ece_hist_top"]) <= TOL
    assert abs(cli["kde_ece"] - mm["ece_kde_top"]) <= TOL
    assert abs(cli["adaece"] - mm["ece_hist"]) > 1e-3
    assert abs(cli["kde_ece"] - mm["ece_kde"]) > 1e-3


@pytest.mark.parametrize("absent", [4, 2])
def test_class_absent_from_split(calibench, tmp_path, absent):
    """Class `absent` of K = 5 never occurs as a label. Every library but one keeps K from the
    probability columns; focal_calibration's ClasswiseECELoss takes K = max(label) + 1, so when
    the LAST class is absent it averages over 4 classes and drops column 4 (whose ECE is not
    0: p_4 > 0 with no positives). calibench's sce under `focal` is the mean over all 5
    columns = their loop with num_classes = 5."""
    present = [c for c in range(5) if c != absent]
    path, z, y = _two_class_split(tmp_path, 5, present=present, seed=700 + absent)
    p = pn.softmax64(z)
    cli = run_cli(calibench, path, "focal", 15)
    theirs = pn.focal_sce(p, y, 15)
    assert abs(cli["sce"] - pn.focal_sce(p, y, 15, num_classes=5)) <= TOL
    if absent == 4:
        assert abs(cli["sce"] - theirs) > 1e-4, (cli["sce"], theirs)
        assert abs(theirs - pn.focal_sce(p, y, 15, num_classes=4)) <= 1e-12
        cli_rest = {q: run_cli(calibench, path, q, 15) for q in PRESETS}
        peers = pn.peer_numbers(p, y, True, 15, marginal_default=False)
        for preset, key, lib, lkey in PARITY:
            if (preset, key) == ("focal", "sce"):
                continue
            a, b = cli_rest[preset][key], peers[lib][peer_key(lib, lkey, y, 5, peers)]
            assert abs(a - b) <= TOL, (cli_rest[preset]["_cmd"], key, a, lib, lkey, b)
    else:
        assert abs(cli["sce"] - theirs) <= TOL
        bad = check_parity(calibench, path, z, y, False, 15)
        assert not bad, "\n".join(bad)


# ------------------------------------------------------------------- netcal quantile edges


def test_netcal_equal_mass_duplicate_edges_raise(calibench, tmp_path):
    """Many equal confidences make np.quantile return equal edges; netcal's
    ECE(equal_intervals=False) then raises ValueError from scipy's binned_statistic_dd ("The
    smallest edge difference is numerically 0."). calibench's `quantile` rule keeps the
    duplicate edges (their bins are empty): its adaece equals netcal's own binning with the
    duplicates removed."""
    rng = np.random.default_rng(801)
    n, k, bins = 200, 3, 10
    conf = np.where(np.arange(n) < 120, 0.75, rng.uniform(0.34, 1.0, n))
    corr = rng.uniform(size=n) < conf
    p = conf_rows(conf, k)
    y = labels_for(corr, k, rng)
    path = tmp_path / "dup.h5"
    write_dump(path, p, y, probs=True)
    nc = pn.netcal_numbers(p, y, bins)
    assert nc["ece_em"] == DUPLICATE_EDGES, nc
    q = np.quantile(conf, np.linspace(0, 1, bins + 1))
    q[0], q[-1] = 0.0, 1.0
    assert len(np.unique(q)) < len(q)
    cli = run_cli(calibench, path, "netcal", bins)
    want = pn.netcal_binned(conf, corr.astype(np.float64), np.unique(q))
    assert abs(want - nc["ece_em_distinct_edges"]) <= 1e-15
    assert abs(cli["adaece"] - want) <= TOL, (cli["_cmd"], cli["adaece"], want)
    # Where the edges are distinct, the distinct-edge binning is netcal's number itself.
    conf2 = np.minimum(conf + np.arange(n) * 1e-7, 1.0)
    nc2 = pn.netcal_numbers(conf_rows(conf2, k), y, bins)
    assert abs(nc2["ece_em"] - nc2["ece_em_distinct_edges"]) <= 1e-15, nc2
