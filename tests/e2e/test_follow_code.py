"""`--follow code`: the weight-scaling / class-based TS authors' code where it departs from their
papers (liorfrenkel1992/calibration @ 01ea29b), against the float64 ports of that code in
tests/reference/frenkel_code_ref.py (themselves checked against the code run under torch in
test_frenkel_code_ref.py).

- ws --follow code = set_temperature5: the least-squares weight over 13 equal-mass bins. The
  port and calibench compute the same float64 sums in the same order (the bin accuracy as the
  code's float32 mean in both): the weight must agree to 1e-13 relative (the bin means are
  summed in another order), the calibrated test probabilities to 1e-12.
- cws --follow code = set_temperature4 (test_cws_code states its rules and tolerances).
- cts_greedy --cts-search nudge --follow code = set_temperature with acc_check: accepted
  candidates store the leftover grid temperature 10.1. The temperatures are float32 values on
  both sides and must be identical; the ECE comparisons are strict `<` on both sides, so a tie
  decided differently would show (calibench's ECE uses the bin rule i/M in float64, the port
  the code's float32 torch.linspace bounds and accumulator: identical decisions on these inputs
  is what this test pins).
"""

import sys

import numpy as np
import pytest

from conftest import REPO
from fit_helpers import run_cli, write_dump

sys.path.insert(0, str(REPO / "tests" / "reference"))
import frenkel_code_ref as ref  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "real" / "h5"


def random_case(seed, n, k):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(2 * n, k)) * 2.0).astype(np.float32)
    y = np.where(rng.random(2 * n) < 0.6, z.argmax(axis=1), rng.integers(0, k, 2 * n)).astype(np.int32)
    return (z[:n], y[:n]), (z[n:], y[n:])


def dumps():
    cases = [random_case(s, n, k) for s, (n, k) in enumerate([(600, 3), (600, 5), (800, 8), (500, 4), (900, 10),
                                                                 (400, 6), (40, 3)])]
    for name in ("cxr14_resnet50", "cxr14_densenet121", "cxr14_vgg_bn"):
        path = REAL / f"{name}.h5"
        if path.exists():
            import h5py

            with h5py.File(path, "r") as f:
                cases.append(((f["val/logits"][...], f["val/labels"][...]), (f["test/logits"][...], f["test/labels"][...])))
    return cases


CASES = dumps()


def confident_case():
    """Accuracy above 99 % in most bins and confidences above 0.9999: the code's cap fires."""
    rng = np.random.default_rng(42)
    n, k = 700, 4
    z = (rng.normal(size=(2 * n, k)) * 6.0).astype(np.float32)
    z[np.arange(2 * n), z.argmax(axis=1)] += 12.0
    y = z.argmax(axis=1).astype(np.int32)
    y[::300] = (y[::300] + 1) % k
    return (z[:n], y[:n]), (z[n:], y[n:])


CWS_CASES = CASES + [confident_case()]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_ws_code_weight(calibench, tmp_path, case):
    val, test = CASES[case]
    k = val[0].shape[1]
    path = tmp_path / "d.h5"
    write_dump(path, val, test, k)
    out, ctx = run_cli(calibench, "fit", path, "--method", "ws", "--follow", "code", "--save", tmp_path / "c.h5")
    want = ref.ws_code(val[0].astype(np.float64), val[1])["weight"]
    assert out["params"]["follow"] == "code", ctx
    assert out["params"]["weight"] == pytest.approx(want, rel=1e-13), ctx
    import h5py

    with h5py.File(tmp_path / "c.h5", "r") as f:
        probs = f["test/probs"][...]
    np.testing.assert_allclose(probs, ref.ws_apply_code(test[0].astype(np.float64), out["params"]["weight"]),
                               rtol=0, atol=1e-12, err_msg=ctx)


@pytest.mark.parametrize("bins", [15, 4, 11])
@pytest.mark.parametrize("case", range(len(CWS_CASES)))
def test_cws_code(calibench, tmp_path, case, bins):
    """set_temperature4: equal-mass interp edges, the 0.9999 cap, empty bins at weight 0, the
    clipped ratio stored as float32; applied with f32(1 - w)/K and renormalised rows, samples
    outside the validation range unchanged. Edges equal to 1e-15, weights exactly (float32 on
    both sides), test probabilities to 1e-12."""
    val, test = CWS_CASES[case]
    path = tmp_path / "d.h5"
    write_dump(path, val, test, val[0].shape[1])
    out, ctx = run_cli(calibench, "fit", path, "--method", "cws", "--follow", "code", "--calib-bins", bins,
                       "--save", tmp_path / "c.h5")
    want = ref.cws_code(val[0].astype(np.float64), val[1], n_bins=bins)
    np.testing.assert_allclose(out["params"]["edges"], want["edges"], rtol=0, atol=1e-15, err_msg=ctx)
    assert out["params"]["weights"] == [float(w) for w in want["weights"]], ctx
    import h5py

    with h5py.File(tmp_path / "c.h5", "r") as f:
        probs = f["test/probs"][...]
    np.testing.assert_allclose(probs, ref.cws_apply_code(test[0].astype(np.float64), want["edges"], want["weights"]),
                               rtol=0, atol=1e-12, err_msg=ctx)
    if case == len(CWS_CASES) - 1:
        assert want["is_acc"], "the confident case must exercise the code's cap"


@pytest.mark.parametrize("accuracy_check", [False, True])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_cts_nudge_code(calibench, tmp_path, case, accuracy_check):
    val, test = CASES[case]
    path = tmp_path / "d.h5"
    write_dump(path, val, test, val[0].shape[1])
    out, ctx = run_cli(calibench, "fit", path, "--method", "cts_greedy", "--cts-search", "nudge", "--follow", "code",
                       "--accuracy-constraint", "on" if accuracy_check else "off", "--objective-bins", "15")
    want = ref.cts_nudge_code(val[0].astype(np.float64), val[1], acc_check=accuracy_check)["temperatures"]
    assert out["params"]["temperatures"] == [float(t) for t in want], ctx
    if accuracy_check:  # every class ends at T0 or at the leftover 10.1
        t0 = float(np.float32(out["params"]["initial_temperature"]))
        assert all(t in (t0, float(np.float32(10.09999999999998))) for t in out["params"]["temperatures"]), ctx


def test_nudge_paper_never_stores_the_leftover(calibench, tmp_path):
    val, test = CASES[0]
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 3)
    out, _ = run_cli(calibench, "fit", path, "--method", "cts_greedy", "--cts-search", "nudge")
    assert float(np.float32(10.09999999999998)) not in out["params"]["temperatures"]


@pytest.mark.parametrize("args, message", [
    (["--method", "cts_greedy", "--follow", "code"], "the authors' code is the nudge search"),
    (["--method", "ws", "--follow", "code", "--grid", "0:1:0.1"], "--grid and --objective-bins do not apply"),
    (["--method", "ws", "--follow", "both"], "--follow"),
    (["--method", "cws", "--follow", "code", "--calib-bins", "auto"], "the code fixes the number of bins"),
    (["--method", "cws", "--follow", "code", "--objective-bins", "15"], "--objective-bins does not apply"),
    (["--method", "ts", "--follow", "code"], "--follow"),
])
def test_follow_refusals(calibench, tmp_path, args, message):
    val, test = CASES[0]
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 3)
    r = calibench("fit", path, *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_objective_bins_fit_with_15_report_with_10(calibench, tmp_path):
    val, test = CASES[2]
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 8)
    a, _ = run_cli(calibench, "fit", path, "--method", "ts", "--objective", "ece", "--bins", "15")
    b, _ = run_cli(calibench, "fit", path, "--method", "ts", "--objective", "ece", "--bins", "10", "--objective-bins", "15")
    assert a["params"] == b["params"]  # the fit saw 15 bins in both
    assert b["options"]["objective_bins"] == 15 and b["options"]["bins"] == 10  # bins: the evaluation's
    assert b["test"]["ece"] != a["test"]["ece"]  # reported with 10 bins


def test_ws_code_without_a_weight(calibench, tmp_path):
    """N = 1, or every confidence tied: the smallest confidence is in no bin, so every bin is empty."""
    z = np.tile(np.array([[1.0, 0.0, 0.5]], dtype=np.float32), (6, 1))
    y = np.zeros(6, dtype=np.int32)
    for rows in (1, 6):
        path = tmp_path / f"d{rows}.h5"
        write_dump(path, (z[:rows], y[:rows]), (z, y), 3)
        r = calibench("fit", path, "--method", "ws", "--follow", "code")
        assert r.returncode == 2 and "every one of the code's bins is empty" in r.stderr and str(path) in r.stderr, \
            r.stderr


def test_ts_objective_bins_needs_a_binned_objective(calibench, tmp_path):
    val, test = CASES[0]
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 3)
    r = calibench("fit", path, "--method", "ts", "--objective-bins", "15")
    assert r.returncode == 2 and "--objective-bins applies to ts --objective ece or adaece" in r.stderr, r.stderr
