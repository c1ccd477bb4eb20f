"""Checks of skce_ref.py (the SKCE of Widmann et al., NeurIPS 2019): a brute-force double loop
written from the definition (expectations over Z ~ p with the tensor kernel, not the white-kernel
shortcut), the authors' printed numbers (pycalibration README and tests, CalibrationPaper's
CIFAR-10 tables), unbiasedness and power on sampled data, the null distribution of the p-value,
invariances.  Julia is not installed here, so CalibrationErrors.jl itself is not run: its
numbers come from what the authors printed."""
import math
import pathlib
import random
import statistics
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import calib_ref  # noqa: E402
import skce_ref as ref  # noqa: E402

# Sums of up to ~1e4 terms of size <= 2 in a different order than the loop: a few 1e-15
# absolute, so 1e-12 relative on estimates that are >= 1e-3 of the terms' scale.
LOOP = 1e-12


# ------------------------------------------------------------------ brute force from the definition


def tv(a, b):
    return sum(abs(x - z) for x, z in zip(a, b)) / 2


def kappa(a, b, nu, metric, kernel):
    d = tv(a, b) if metric == "tv" else math.sqrt(sum((x - z) ** 2 for x, z in zip(a, b)))
    return math.exp(-d / nu) if kernel == "laplacian" else math.exp(-d * d / (2 * nu * nu))


def h_def(p, y, q, yq, nu, metric="tv", kernel="laplacian"):
    """h = k((p,y),(q,y')) - E_{z~p} k((p,z),(q,y')) - E_{z'~q} k((p,y),(q,z'))
    + E_{z~p,z'~q} k((p,z),(q,z')), k((p,a),(q,b)) = kappa(p, q) [a == b]."""
    kk = kappa(p, q, nu, metric, kernel)
    K = len(p)

    def k(a, b):
        return kk * (a == b)

    t = k(y, yq)
    t -= sum(p[z] * k(z, yq) for z in range(K))
    t -= sum(q[z] * k(y, z) for z in range(K))
    t += sum(p[z] * q[w] * k(z, w) for z in range(K) for w in range(K))
    return t


def median_all_def(P, metric="tv"):
    """Statistics.median of the full N x N distance matrix (diagonal zeros included)."""
    n = len(P)
    d = [tv(P[i], P[j]) if metric == "tv" else math.dist(P[i], P[j]) for i in range(n) for j in range(n)]
    return statistics.median(d)


def skce_def(P, Y, nu, unbiased=True, **kw):
    n = len(P)
    if unbiased:
        return sum(h_def(P[i], Y[i], P[j], Y[j], nu, **kw) for j in range(n) for i in range(j)) / (n * (n - 1) / 2)
    return sum(h_def(P[i], Y[i], P[j], Y[j], nu, **kw) for i in range(n) for j in range(n)) / (n * n)


def sample(rng, n, k, alpha=1.0, calibrated=True):
    p = rng.dirichlet(np.full(k, alpha), n)
    q = p
    if not calibrated:  # labels from the sharpened prediction: the model is under-confident
        q = p ** 3
        q /= q.sum(axis=1, keepdims=True)
    u = rng.random(n)
    y = np.minimum((np.cumsum(q, axis=1) < u[:, None]).sum(axis=1), k - 1)  # inverse CDF draw
    return p, y


@pytest.mark.parametrize("n,k,seed", [(2, 2, 0), (3, 3, 1), (17, 4, 2), (30, 5, 3), (41, 2, 4)])
@pytest.mark.parametrize("metric,kernel", [("tv", "laplacian"), ("euclidean", "gaussian")])
def test_against_definition_loop(n, k, seed, metric, kernel):
    rng = np.random.default_rng(seed)
    p, y = sample(rng, n, k, alpha=0.7)
    P, Y = p.tolist(), y.tolist()
    nu = median_all_def(P, metric)
    assert ref.median_distance(p, metric, "all") == pytest.approx(nu, rel=1e-15, abs=0)
    got = ref.skce_unbiased(p, y, metric=metric, kernel=kernel)
    want = skce_def(P, Y, nu, metric=metric, kernel=kernel)
    assert got == pytest.approx(want, rel=LOOP, abs=1e-15)
    gotb = ref.skce_biased(p, y, metric=metric, kernel=kernel)
    assert gotb == pytest.approx(skce_def(P, Y, nu, unbiased=False, metric=metric, kernel=kernel), rel=LOOP, abs=1e-15)
    assert gotb >= -1e-15  # the biased estimator is a squared RKHS norm


def test_matrix_valued_form_equals_white_kernel_form():
    # paper eq.: h_ij = (e_yi - p_i)^T k(p_i, p_j) I (e_yj - p_j)
    rng = np.random.default_rng(5)
    p, y = sample(rng, 25, 6, alpha=0.3)
    e = np.eye(6)[y] - p
    kap = ref.kernel_values(ref.distances(p, p), 0.4)
    h_mat = kap * (e @ e.T)
    assert np.allclose(ref.h_block(p, y, p, y, 0.4), h_mat, rtol=0, atol=1e-15)


def test_block_estimator_loop_and_linear():
    rng = np.random.default_rng(6)
    p, y = sample(rng, 23, 3)
    nu = 0.5
    P, Y = p.tolist(), y.tolist()
    # blocksize 2: (1/floor(n/2)) sum_i h_{2i-1, 2i} (paper Table 1), the 23rd row unused
    lin = sum(h_def(P[2 * i], Y[2 * i], P[2 * i + 1], Y[2 * i + 1], nu) for i in range(11)) / 11
    assert ref.skce_block(p, y, 2, bandwidth=nu) == pytest.approx(lin, rel=LOOP)
    blk = np.mean([skce_def(P[5 * b:5 * b + 5], Y[5 * b:5 * b + 5], nu) for b in range(4)])
    assert ref.skce_block(p, y, 5, bandwidth=nu) == pytest.approx(blk, rel=LOOP)
    assert ref.skce_block(p, y, 23, bandwidth=nu) == pytest.approx(ref.skce_unbiased(p, y, bandwidth=nu), rel=LOOP)
    assert math.isnan(ref.skce_block(p[:3], y[:3], 5, bandwidth=nu))


def test_class_permutation_and_row_order_invariance():
    rng = np.random.default_rng(9)
    p, y = sample(rng, 150, 5, calibrated=False)
    perm = rng.permutation(5)
    inv = np.argsort(perm)
    pp, yp = p[:, perm], inv[y]  # column c of pp is class perm[c]; label y sits at column inv[y]
    assert np.array_equal(pp[np.arange(150), yp], p[np.arange(150), y])
    assert ref.median_distance(pp) == pytest.approx(ref.median_distance(p), rel=1e-15)
    assert ref.skce_unbiased(pp, yp) == pytest.approx(ref.skce_unbiased(p, y), rel=1e-13)
    assert ref.skce_biased(pp, yp) == pytest.approx(ref.skce_biased(p, y), rel=1e-13)
    a = ref.asymptotic_test(p, y, resamples=100, seed=2)
    b = ref.asymptotic_test(pp, yp, resamples=100, seed=2)
    assert np.allclose(a["bootstrap"], b["bootstrap"], rtol=1e-11, atol=1e-17)
    assert a["pvalue"] == b["pvalue"]
    rows = rng.permutation(150)  # the U-statistic and the median do not depend on the row order
    assert ref.skce_unbiased(p[rows], y[rows]) == pytest.approx(ref.skce_unbiased(p, y), rel=1e-13)


# ------------------------------------------------------------------ median heuristic


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("n", [1, 2, 3, 10, 51, 200])
def test_median_two_pass_selection_exact(n, direct, monkeypatch):
    if not direct:
        monkeypatch.setattr(ref, "_DIRECT_PAIRS", 0)  # force the two-pass histogram selection
    rng = np.random.default_rng(n)
    p = rng.dirichlet(np.ones(4), n)
    if n >= 10:
        p[::3] = p[0]  # ties: many identical rows, so many equal (and zero) distances
    full = ref.distances(p, p)
    assert ref.median_distance(p, "tv", "all") == float(np.median(full))
    if n >= 2:
        iu = np.triu_indices(n, 1)
        assert ref.median_distance(p, "tv", "upper") == float(np.median(full[iu]))
        assert ref.median_distance(p, "euclidean", "upper") == float(np.median(ref.distances(p, p, "euclidean")[iu]))


def test_median_chunking_does_not_matter(monkeypatch):
    rng = np.random.default_rng(8)
    p, y = sample(rng, 97, 5)
    want = (ref.median_distance(p), ref.skce_unbiased(p, y))
    monkeypatch.setattr(ref, "_CHUNK_ELEMS", 7)  # one row per chunk
    monkeypatch.setattr(ref, "_DIRECT_PAIRS", 0)
    got = (ref.median_distance(p), ref.skce_unbiased(p, y))
    assert got[0] == want[0]
    assert got[1] == pytest.approx(want[1], rel=1e-13)


def test_bandwidth_fallbacks():
    p = np.tile([[0.2, 0.8]], (5, 1))
    assert ref.median_bandwidth(p) == 1.0  # all identical: kernel is 1 whatever nu
    p = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]])  # 12 of 16 entries are zero: median 0
    assert ref.median_distance(p) == 0.0
    assert ref.median_bandwidth(p) == pytest.approx(6 / 16, rel=1e-15)  # mean of the 16 entries
    assert math.isnan(ref.skce_unbiased(p[:1], [0]))


# ------------------------------------------------------------------ the authors' printed numbers


def test_pycalibration_readme_values():
    # README of devmotion/pycalibration 454ce0d: SKCE(ExponentialKernel() (x) WhiteKernel()),
    # i.e. exp(-||p - p'||_2) [y == y'], unbiased, outputs printed by Python's repr (17 digits).
    sk = lambda p, y: ref.skce_unbiased(p, y, bandwidth=1.0, metric="euclidean")  # noqa: E731
    assert sk([[0.1, 0.8, 0.1], [0.2, 0.5, 0.3]], [1, 2]) == pytest.approx(-0.10317943453412069, rel=1e-15)
    rng = np.random.default_rng(1234)
    p = rng.dirichlet((3, 2, 5), 100)
    y = rng.integers(low=1, high=4, size=100) - 1
    # 1e-13: 4950 terms summed in another order (measured 2.6e-15)
    assert sk(p, y) == pytest.approx(0.02015240706950358, rel=1e-13)
    # Bernoulli predictions q = P(True): exp(-|q - q'|) is the TV kernel of (1 - q, q) with nu = 1
    random.seed(1234)
    q = np.array([random.random() for _ in range(100)])
    o = np.array([bool(random.getrandbits(1)) for _ in range(100)])
    pb = np.stack([1 - q, q], axis=1)
    assert ref.skce_unbiased(pb, o.astype(int), bandwidth=1.0) == pytest.approx(0.028399084017414655, rel=1e-13)
    rng = np.random.default_rng(1234)
    q = rng.random(100)
    o = rng.choice([True, False], 100)
    pb = np.stack([1 - q, q], axis=1)
    assert ref.skce_unbiased(pb, o.astype(int), bandwidth=1.0) == pytest.approx(0.03320398246523166, rel=1e-13)


def test_pycalibration_readme_asymptotic_example_is_three_columns():
    # The README's AsymptoticSKCETest(TV exponential (x) white, predictions, outcomes) passes the
    # 100 x 3 matrix without RowVecs; the package (2021) read its 3 columns as 3 predictions and
    # used outcomes[1:3]. Its printed estimate 6.07887e-5 and statistic -4.955380469272125 are
    # exactly that; the rows as intended give 0.0213.
    rng = np.random.default_rng(1234)
    p = rng.dirichlet((3, 2, 5), 100)
    y = rng.integers(low=1, high=4, size=100) - 1
    r = ref.asymptotic_test(p.T, y[:3], bandwidth=1.0, resamples=10)
    assert r["estimate"] == pytest.approx(6.07887e-5, rel=1e-5)  # printed with 6 digits
    assert r["statistic"] == pytest.approx(-4.955380469272125, rel=1e-14)
    assert ref.skce_unbiased(p, y, bandwidth=1.0) == pytest.approx(0.02129650889373521, rel=1e-13)


def test_pycalibration_unit_values():
    # pycalibration/tests/test_calerrors.py: SqExponentialKernel() (x) WhiteKernel() on one-hot
    # predictions [[1,0],[0,1]] (exp(-d^2/2), d^2 = 2).
    e = np.eye(2)
    g = dict(bandwidth=1.0, metric="euclidean", kernel="gaussian")
    for y, b, u in (([0, 1], 0.0, 0.0), ([0, 0], 0.5, 0.0), ([1, 0], 1 - math.exp(-1), -2 * math.exp(-1)),
                    ([1, 1], 0.5, 0.0)):
        assert ref.skce_biased(e, y, **g) == pytest.approx(b, abs=1e-15)
        assert ref.skce_unbiased(e, y, **g) == pytest.approx(u, abs=1e-15)
        rep = np.tile(e, (10, 1))
        assert ref.skce_block(rep, np.tile(y, 10), 2, **g) == pytest.approx(u, abs=1e-15)


MIRROR = pathlib.Path("/work/.mirror/devmotion+CalibrationPaper/repo")
CIFAR = "experiments/data/PyTorch-CIFAR10/"


def _paper_csv(name):
    if not MIRROR.is_dir():
        pytest.skip("devmotion/CalibrationPaper snapshot not on this machine")
    out = subprocess.run(["git", "--git-dir", str(MIRROR), "show", f"HEAD:{CIFAR}{name}"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"{name} not in the snapshot")
    return out.stdout


def _paper_table(name):
    lines = _paper_csv(name).strip().splitlines()
    head = lines[0].split(",")
    return {r.split(",")[0]: dict(zip(head, r.split(","))) for r in lines[1:]}


@pytest.mark.parametrize("model", ["googlenet"])
def test_calibrationpaper_cifar10(model):
    # devmotion/CalibrationPaper a164e8b, experiments/scripts/nn.jl: 10,000 CIFAR-10 test
    # predictions, kernel median_TV_kernel, CalibrationErrors 0.3 / CalibrationTests 0.2.
    import io
    y = np.loadtxt(io.StringIO(_paper_csv("labels.csv")), dtype=np.int64) - 1
    p = np.loadtxt(io.StringIO(_paper_csv(f"{model}.csv")), delimiter=",")
    err, pv = _paper_table("errors.csv")[model], _paper_table("pvalues.csv")[model]
    nu = ref.median_distance(p)
    # The authors' running means over 5e7 terms round differently from our sums: measured
    # <= 3.9e-13 relative over the 14 models; 1e-11 leaves margin. The i < j median instead of
    # the full-matrix one moves the estimate by up to 3.6e-7 relative.
    upper, diag = ref._sums(p, y, nu, "tv", "laplacian")  # one pass for both estimators
    n = len(y)
    uq = upper / (n * (n - 1) / 2)
    assert uq == pytest.approx(float(err["SKCEuq_median"]), rel=1e-11)
    assert (2 * upper + diag) / n**2 == pytest.approx(float(err["SKCEb_median"]), rel=1e-11)
    ul = ref.skce_block(p, y, 2, bandwidth=nu)
    assert ul == pytest.approx(float(err["SKCEul_median"]), rel=1e-11)
    bt = ref.block_test(p, y, 2, bandwidth=nu, variance="population")
    assert bt["pvalue"] == pytest.approx(float(pv["SKCEul_median_asymptotic"]), abs=1e-12)
    assert ref.distribution_free_pvalue(uq, len(y)) == pytest.approx(float(pv["SKCEuq_median_distribution_free"]), abs=1e-13)
    assert ref.distribution_free_pvalue(ul, len(y)) == pytest.approx(float(pv["SKCEul_median_distribution_free"]), abs=1e-13)


# ------------------------------------------------------------------ sampled data: mean and power


def test_unbiased_mean_zero_when_calibrated_and_positive_when_not():
    rng = np.random.default_rng(11)
    cal, mis = [], []
    for _ in range(300):
        p, y = sample(rng, 60, 4)
        cal.append(ref.skce_unbiased(p, y))
        p, y = sample(rng, 60, 4, calibrated=False)
        mis.append(ref.skce_unbiased(p, y))
    cal, mis = np.array(cal), np.array(mis)
    se = cal.std(ddof=1) / math.sqrt(cal.size)
    assert abs(cal.mean()) < 4 * se  # 4 SE: fails by chance with probability ~6e-5
    assert (cal < 0).mean() > 0.3  # an unbiased estimator of 0 is often negative
    se_m = mis.std(ddof=1) / math.sqrt(mis.size)
    assert mis.mean() > 20 * se_m and mis.mean() > 20 * abs(cal.mean())


def test_linear_estimator_mean_zero_when_calibrated():
    rng = np.random.default_rng(12)
    est = np.array([ref.skce_block(*sample(rng, 80, 3), 2) for _ in range(300)])
    assert abs(est.mean()) < 4 * est.std(ddof=1) / math.sqrt(est.size)


# ------------------------------------------------------------------ p-values


def test_bootstrap_statistic_equals_resampled_loop():
    # CalibrationTests 0.2 asymptotic_quadratic.jl computed T' from the resampled rows
    # themselves: meanij over pairs i < j of the resample, meanik over resample x original;
    # extreme when meanij >= statistic + 2 meanik. Same resamples, independent arithmetic.
    rng = np.random.default_rng(13)
    p, y = sample(rng, 40, 3)
    nu = ref.median_bandwidth(p)
    r = ref.asymptotic_test(p, y, resamples=25, seed=4)
    n = 40
    h = ref.h_block(p, y, p, y, nu)
    iu = np.triu_indices(n, 1)
    assert r["estimate"] == pytest.approx(h[iu].mean(), rel=1e-13)
    assert r["statistic"] == pytest.approx(n / (n - 1) * h[iu].mean() - h.mean(), rel=1e-13)
    for b in range(25):
        idx = calib_ref.bootstrap_indices(4, b, n)
        hs = h[np.ix_(idx, idx)]
        meanij = hs[iu].mean()
        meanik = h[idx].mean()
        assert r["bootstrap"][b] == pytest.approx(meanij - 2 * meanik, rel=1e-12, abs=1e-15)


def test_pvalue_deterministic_given_seed():
    rng = np.random.default_rng(14)
    p, y = sample(rng, 120, 4)
    a = ref.asymptotic_test(p, y, resamples=200, seed=3)
    b = ref.asymptotic_test(p, y, resamples=200, seed=3)
    c = ref.asymptotic_test(p, y, resamples=200, seed=4)
    assert np.array_equal(a["bootstrap"], b["bootstrap"]) and a["pvalue"] == b["pvalue"]
    assert not np.array_equal(a["bootstrap"], c["bootstrap"])


def test_pvalue_uniform_under_null_and_tiny_under_miscalibration():
    rng = np.random.default_rng(15)
    pvals = []
    for s in range(300):
        p, y = sample(rng, 100, 3)
        pvals.append(ref.skce_pvalue(p, y, resamples=200, seed=s))
    pvals = np.array(pvals)
    alphas = np.arange(0.05, 1.0, 0.1)
    ecdf = np.array([(pvals <= a).mean() for a in alphas])
    # 300 p-values: DKW gives sup|ecdf - F| < 0.107 with probability 0.999 if the p-value is
    # uniform; the bootstrap's 200 resamples and N = 100 add a little. The authors' own test
    # (test/skce/asymptotic.jl) asks max(ecdf - alpha) < 0.15 with 100 p-values.
    assert np.max(np.abs(ecdf - alphas)) < 0.12
    assert 0.01 < (pvals <= 0.05).mean() < 0.1
    # the authors' "only one" targets and the paper's M3 (uniform labels, Dir(0.1) predictions)
    p, _ = sample(rng, 100, 3)
    assert ref.skce_pvalue(p, np.zeros(100, dtype=int), resamples=200) < 0.01
    p = rng.dirichlet(np.full(10, 0.1), 250)
    assert ref.skce_pvalue(p, rng.integers(0, 10, 250), resamples=200) == 0.0


def test_block_test_null_and_power():
    rng = np.random.default_rng(16)
    pv = np.array([ref.block_test(*sample(rng, 100, 3), 2)["pvalue"] for _ in range(300)])
    alphas = np.arange(0.05, 1.0, 0.1)
    assert np.max(np.abs(np.array([(pv <= a).mean() for a in alphas]) - alphas)) < 0.12
    p, _ = sample(rng, 200, 3)
    assert ref.block_test(p, np.zeros(200, dtype=int), 2)["pvalue"] < 1e-6


def test_distribution_free_bound():
    # exp(-floor(n/2) t^2 / (2 B^2)), B = 2: at t = B sqrt(2 ln(1/a) / floor(n/2)) it equals a
    n, a = 101, 0.05
    t = 2 * math.sqrt(2 * math.log(1 / a) / (n // 2))
    assert ref.distribution_free_pvalue(t, n) == pytest.approx(a, rel=1e-14)
    # the authors square the estimate: a negative estimate gets the same bound as |t| (see report)
    assert ref.distribution_free_pvalue(-t, n) == pytest.approx(a, rel=1e-14)
    # biased: exp(-max(0, sqrt(n t / B) - 1)^2 / 2); n t / B = 25 gives exp(-8), n t / B <= 1 gives 1
    assert ref.distribution_free_pvalue(0.5, 100, unbiased=False) == pytest.approx(math.exp(-8), rel=1e-14)
    assert ref.distribution_free_pvalue(0.02, 100, unbiased=False) == 1.0
