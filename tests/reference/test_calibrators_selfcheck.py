"""Self-checks of the calibration-method reference (calibrators_ref.py) that need no binary:
recovery of a known temperature, an independent 1-D minimiser, hand-worked tiny examples (the
arithmetic is in the comments), literal loop versions of vectorised code, and the invariants
of docs/calibrators.md (weights in [0, 1], ECE non-increasing over cts_greedy cycles, ...)."""
import math
import pathlib
import sys
from fractions import Fraction

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import calib_ref as ref  # noqa: E402
import calibrators_ref as cr  # noqa: E402

EXACT = 1e-12  # hand examples: a few roundings of short sums and of exp/log


def synth(seed, n, k, temperature, scale=3.0):
    """calibench-synth-like data: true logits t = scale * N(0, I), y ~ softmax(t), observed
    logits z = temperature * t (float32, like a dump), so TS with T = temperature recovers the
    truth."""
    rng = np.random.default_rng(seed)
    t = scale * rng.normal(size=(n, k))
    p = np.exp(t - t.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(n)
    y = np.minimum((p.cumsum(axis=1) < u[:, None]).sum(axis=1), k - 1)
    z = (temperature * t).astype(np.float32).astype(np.float64)
    return z, y


# ---------------------------------------------------------------------------- grids

def test_parse_grid_defaults():
    g = cr.parse_grid("0.01:10:0.01")
    assert len(g) == 1000 and g[0] == 0.01 and g[-1] == pytest.approx(10.0, abs=1e-12)
    g = cr.parse_grid("0.1:10:0.1")
    assert len(g) == 100 and g[-1] == 10.0
    # start + i step rounded once (exact rational arithmetic, like a fused multiply-add), not
    # twice: with the binary 0.1 = 0.1000000000000000055511, 6 * 0.1 = 0.6000000000000000333,
    # halfway between the doubles 0.59999999999999997780 and 0.60000000000000008882; round-to-
    # even gives the latter, while 0.1 + 5 * 0.1 (two roundings) gives 0.6.
    assert g[5] == float(Fraction(0.1) * 6) == 0.6000000000000001 != 0.1 + 5 * 0.1
    g = cr.parse_grid("0:1:0.001")
    assert len(g) == 1001 and g[0] == 0.0 and g[-1] == pytest.approx(1.0, abs=1e-12)
    assert cr.parse_grid("0.1:0.35:0.1") == [0.1, 0.2, 0.1 + 2 * 0.1]  # stop not on the grid
    assert cr.parse_grid("2,0.5,1") == [2.0, 0.5, 1.0]                # lists keep their order


# ---------------------------------------------------------------------------- ts (nll)

@pytest.mark.parametrize("seed,true_t", [(1, 2.0), (2, 0.7)])
def test_ts_nll_recovers_known_temperature(seed, true_t):
    z, y = synth(seed, 20000, 10, true_t)
    f = cr.fit_ts(z, y, "nll")
    assert f.params["temperature"] == pytest.approx(true_t, abs=0.05), (seed, f.params)


def test_ts_nll_matches_independent_minimiser():
    # scipy's bounded Brent on log T, independent of the reference's root finding on dNLL/db.
    z, y = synth(3, 3000, 5, 1.6)
    t = cr.fit_ts(z, y, "nll").params["temperature"]
    res = minimize_scalar(lambda lt: cr.nll_of_b(z, y, math.exp(-lt)), bounds=(-3, 3), method="bounded",
                          options={"xatol": 1e-10})
    assert t == pytest.approx(math.exp(res.x), rel=1e-6)
    # First-order condition at full precision, and the NLL is not lower on either side.
    assert abs(cr.nll_grad_of_b(z, y, 1 / t)) < 1e-12
    for f in (1 - 1e-6, 1 + 1e-6):
        assert cr.nll_of_b(z, y, 1 / (t * f)) >= cr.nll_of_b(z, y, 1 / t) - 1e-15


def test_ts_nll_degenerate_cases():
    # Every label logit is a maximum: NLL decreases for ever in b -> T = 0, with a note.
    z = np.array([[2.0, 0.0], [0.0, 1.0]])
    t, note = cr.fit_nll_temperature(z, np.array([0, 1]))
    assert t == 0.0 and note
    # Labels always on the smaller logit: dNLL/db(0) = mean(mean_j z - z_y) = 1 > 0 -> T = inf.
    t, note = cr.fit_nll_temperature(z, np.array([1, 0]))
    assert t == math.inf and note


# ---------------------------------------------------------------------------- grid first minimum

def test_ts_grid_first_minimum_and_near_tie_note():
    # z = [100, 0]: at T = 0.01 and 0.02 the confidence is exactly 1.0 (exp(-5000) = 0), so
    # both candidates have ECE |1 - 1| = 0 exactly (label 0 is correct): the first one wins
    # and the tie is reported; T = 100 gives a confidence ~0.731 and a larger ECE.
    z = np.array([[100.0, 0.0]] * 4)
    y = np.zeros(4, dtype=np.int64)
    f = cr.fit_ts(z, y, "ece", grid="0.01,0.02,100")
    assert f.params["temperature"] == 0.01
    assert len(f.near_ties) == 1 and f.near_ties[0]["also"] == [0.02]
    f = cr.fit_ts(z, y, "ece", grid="100,0.02,0.01")   # list order decides
    assert f.params["temperature"] == 0.02


# ---------------------------------------------------------------------------- ws

def test_ws_weight_split_and_order():
    z, y = synth(4, 500, 4, 1.5)
    base = cr.uncalibrated(z, y)
    for a in (0.0, 0.3, 1.0):
        s = cr.weight_split(base, a)
        # confidence = a c + (1 - a)/K and the decision is kept
        assert np.allclose(s.c, a * base.c + (1 - a) / 4, rtol=0, atol=1e-15)
        assert np.array_equal(s.yhat, base.yhat)
        assert ref.order_inversions(base.c, s.c) == 0.0
    f = cr.fit_ws(z, y)
    assert 0.0 <= f.params["weight"] <= 1.0
    # The chosen a is a grid point whose adaECE is the minimum over the whole grid.
    grid = cr.parse_grid("0:1:0.001")
    vals = [ref.adaece(cr.weight_split(base, a), 15) for a in grid]
    assert f.params["weight"] == grid[int(np.argmin(vals))]


# ---------------------------------------------------------------------------- cws

def test_cws_hand_example():
    # K = 2, N = 4, B = 2.  Logits z = log p with confidences 0.6, 0.7, 0.8, 0.9 (class 0
    # predicted) and labels making the correctness [1, 0, 1, 1]:
    #   group 0 = {0.6, 0.7}: A = 0.5, C = 0.65 -> (0.5 - 0.5)/(0.65 - 0.5) = 0
    #   group 1 = {0.8, 0.9}: A = 1,   C = 0.85 -> (1 - 0.5)/(0.85 - 0.5) = 1.43 -> clipped to 1
    #   edges = largest confidence per group = [0.7, 0.9]
    conf = np.array([0.6, 0.7, 0.8, 0.9])
    z = np.log(np.stack([conf, 1 - conf], axis=1))
    y = np.array([0, 1, 0, 0])
    f = cr.fit_cws(z, y, 2)
    assert f.params["weights"] == [0.0, 1.0]
    assert f.params["edges"] == pytest.approx([0.7, 0.9], abs=EXACT)
    # Apply: c = 0.65 -> group 0 (0.7 >= 0.65) -> uniform 0.5; c = 0.75 -> group 1 -> unchanged;
    # c = 0.95 > every edge -> the last group.
    tc = np.array([0.65, 0.75, 0.95])
    s = cr.apply(f, np.log(np.stack([tc, 1 - tc], axis=1)), np.array([0, 0, 0]))
    assert s.c == pytest.approx([0.5, 0.75, 0.95], abs=EXACT)


def test_cws_weight_rules():
    # C <= 1/K -> weight 1: every row uniform over K = 3 (confidence exactly 1/3).
    f = cr.fit_cws(np.zeros((6, 3)), np.array([0, 1, 2, 0, 1, 2]), 2)
    assert f.params["weights"] == [1.0, 1.0]
    # A < 1/K -> weight 0 (clipped): every prediction wrong.
    z = np.array([[2.0, 0.0, 0.0]] * 6)
    f = cr.fit_cws(z, np.ones(6, dtype=np.int64), 3)
    assert f.params["weights"] == [0.0, 0.0, 0.0]


def test_cws_weights_in_unit_interval_and_small_n():
    for seed, n, k, b in ((5, 2000, 10, 15), (6, 50, 3, 30), (7, 10, 2, 15)):
        z, y = synth(seed, n, k, 1.7)
        f = cr.fit_cws(z, y, b)
        w = np.array(f.params["weights"])
        assert np.all((w >= 0) & (w <= 1)), (seed, w)
        assert len(w) == len(f.params["edges"]) == min(n, b)       # empty groups dropped
        assert np.all(np.diff(f.params["edges"]) >= 0)


def test_assign_groups_rule():
    edges = [0.5, 0.7]
    c = np.array([0.4, 0.5, 0.6, 0.7, 0.8])
    assert cr.assign_groups(c, edges).tolist() == [0, 0, 1, 1, 1]


def test_cws_auto_picks_smallest_adaece():
    z, y = synth(8, 400, 3, 1.8)
    f = cr.fit_cws(z, y, "auto")
    vals = f.info["auto_adaece"]
    b_best = min(vals, key=lambda b: (vals[b], b))
    assert f.params["calib_bins"] == b_best


# ---------------------------------------------------------------------------- cts_conf / bts

def test_cts_conf_group_confidence_matches_literal_loop():
    z, y = synth(9, 120, 4, 1.5)
    grid = [0.05, 0.5, 1.0, 2.5, 7.0]
    vec = cr.group_mean_confidence(z[:30], grid)
    lit = [float(np.mean(cr.temperature_split(z[:30], y[:30], 1.0 / t).c)) for t in grid]
    assert vec == pytest.approx(lit, abs=1e-15)


def test_cts_conf_each_group_at_its_argmin():
    z, y = synth(10, 600, 5, 1.8)
    grid = cr.parse_grid("0.05:5:0.05")
    f = cr.fit_cts_conf(z, y, 6, grid="0.05:5:0.05")
    base = cr.uncalibrated(z, y)
    for g, t in zip(cr.confidence_groups(base.c, 6), f.params["temperatures"]):
        a = np.mean(base.correct[g])
        objs = [abs(a - np.mean(cr.temperature_split(z[g], y[g], 1.0 / s).c)) for s in grid]
        assert t == grid[int(np.argmin(objs))]


def test_bts_groups_match_ts_on_each_group():
    z, y = synth(11, 1500, 4, 2.0)
    f = cr.fit_bts(z, y, 3)
    base = cr.uncalibrated(z, y)
    for g, t in zip(cr.confidence_groups(base.c, 3), f.params["temperatures"]):
        assert t == cr.fit_ts(z[g], y[g], "nll").params["temperature"]
        assert 0.5 < t < 8


# ---------------------------------------------------------------------------- cts_greedy

@pytest.mark.parametrize("search", ["grid", "nudge"])
@pytest.mark.parametrize("constraint", [True, False])
def test_cts_greedy_ece_non_increasing(search, constraint):
    rng = np.random.default_rng(12)
    z, y = synth(12, 800, 4, 1.6)
    z = z * rng.uniform(0.6, 1.6, size=4)       # class-dependent over-confidence
    f = cr.fit_cts_greedy(z, y, bins=15, iterations=6, accuracy_constraint=constraint, search=search)
    trace = [f.info["ece_t0"]] + f.info["cycle_ece"]
    if search == "nudge":
        # The nudge search's running best B starts at +inf, so the first candidate (class 0,
        # step -0.2) is always accepted even when it is worse than T0, and with the constraint
        # acc_check then rises to that candidate's accuracy, which can bar returning to T0: the
        # ECE may rise in the first cycle (it does here).  From then on the configuration's ECE
        # is B, which only falls.
        trace = trace[1:]
    assert all(b <= a for a, b in zip(trace, trace[1:])), trace
    assert f.params["iterations_run"] == len(f.info["cycle_ece"]) <= 6
    if search == "grid":
        assert f.info["final_ece"] <= f.info["ece_t0"]
    if constraint:
        assert f.info["final_correct"] >= f.info["correct_t0"]
    if search == "grid":
        grid = cr.parse_grid("0.1:10:0.1")
        assert all(t in grid for t in f.params["temperatures"])
        # At a converged point no single grid move of one class lowers the ECE (with the
        # constraint: among the moves that keep the accuracy).
        if f.params["iterations_run"] < 6:
            for i in range(4):
                for s in grid:
                    trial = list(f.params["temperatures"])
                    trial[i] = s
                    e, c = cr.class_temperature_eval(z, y, trial, 15, "right-closed")
                    if not constraint or c >= f.info["final_correct"]:
                        assert e >= f.info["final_ece"]


def test_cts_greedy_initial_temperature_is_ts_ece():
    z, y = synth(13, 500, 3, 2.2)
    f = cr.fit_cts_greedy(z, y, iterations=1)
    assert f.params["initial_temperature"] == cr.fit_ts(z, y, "ece", grid="0.1:10:0.1").params["temperature"]


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_nudge_hand_example():
    # K = 2, N = 2, one evaluation bin (ECE = |accuracy - mean confidence|), grid "1" -> T0 = 1,
    # one cycle.  Rows: s1 z = [1, 0.95], s2 z = [2, 0], both labelled 0.
    # With temperatures (T0, T1), K = 2: confidence = sigmoid(|z0/T0 - z1/T1|).
    # Start: both correct, mean conf (sig(.05) + sig(2))/2 = 0.69665, ECE 0.30335, 2 correct.
    # Class 0 (T1 = 1), candidates T0 = 0.8, 0.9, 1.0, 1.1, 1.2 (B starts at +inf):
    #   0.8: 2 correct, conf sig(0.3) = 0.57444, sig(2.5) = 0.92414 -> ECE 0.25071 < inf: accept
    #   0.9: 2 correct, ECE 0.27879;  1.0: 0.30335                     (not below B)
    #   1.1: s1 flips (1/1.1 < 0.95): 1 correct, conf 0.51023, 0.86035 -> ECE |0.5 - 0.68529| = 0.18529
    #   1.2: s1 wrong, conf sig(0.95 - 1/1.2) = 0.52913, sig(2/1.2) = 0.84113 -> ECE 0.18513
    #   constraint on: 1.1 and 1.2 lose accuracy (1 < acc_check = 2) -> T0 = 0.8, B = 0.25071
    #   constraint off: 1.1 accepted (B = 0.18529), then 1.2 (B = 0.18513) -> T0 = 1.2
    # Class 1, constraint on (class-0 scaled logits 1.25 and 2.5):
    #   T1 = 0.8: 1.1875 -> conf sig(0.0625) -> ECE 0.28012;  0.9: 0.26370;  1.0: = B (not below)
    #   1.1: s1 conf sig(1.25 - 0.95/1.1) -> ECE 0.24023 accept;  1.2: sig(1.25 - 0.95/1.2) -> ECE 0.23162 accept
    #   -> temperatures (0.8, 1.2), final ECE 1 - (sig(1/0.8 - 0.95/1.2) + sig(2/0.8))/2
    # Class 1, constraint off (class-0 scaled logits 1/1.2 = 0.8333 and 1.6667):
    #   0.8: s1 wrong, ECE 0.21438; 0.9: 0.19823; 1.0: = B; 1.1: 0.95/1.1 = 0.8636 > 0.8333, s1 wrong,
    #   conf sig(0.0303) = 0.50758 -> ECE |0.5 - 0.67435| = 0.17435 accept; 1.2: s1 correct again,
    #   ECE 1 - 0.67577 = 0.32423 -> temperatures (1.2, 1.1), final ECE |0.5 - (sig(0.95/1.1 - 1/1.2) + sig(2/1.2))/2|
    z = np.array([[1.0, 0.95], [2.0, 0.0]])
    y = np.array([0, 0])
    f = cr.fit_cts_greedy(z, y, grid="1", bins=1, iterations=1, accuracy_constraint=True, search="nudge")
    assert f.params == {"temperatures": [0.8, 1.2], "iterations_run": 1, "initial_temperature": 1.0}
    want = 1 - (sigmoid(1 / 0.8 - 0.95 / 1.2) + sigmoid(2 / 0.8)) / 2
    assert f.info["final_ece"] == pytest.approx(want, abs=EXACT)
    assert [t[2] for t in f.info["trace"]] == [0.8, 1.1, 1.2]
    f = cr.fit_cts_greedy(z, y, grid="1", bins=1, iterations=1, accuracy_constraint=False, search="nudge")
    assert f.params == {"temperatures": [1.2, 1.1], "iterations_run": 1, "initial_temperature": 1.0}
    want = abs(0.5 - (sigmoid(0.95 / 1.1 - 1 / 1.2) + sigmoid(2 / 1.2)) / 2)
    assert f.info["final_ece"] == pytest.approx(want, abs=EXACT)
    assert [t[2] for t in f.info["trace"]] == [0.8, 1.1, 1.2, 1.1]


def test_nudge_single_class_walk():
    # One row z = [ln 3, 0], label 0 (correct, confidence 3/4 at T = 1), one bin: ECE = 1 - conf,
    # which falls as T0 falls; class 1's logit is 0, so its temperature never changes anything
    # (equal ECE is not strictly below B).  Each cycle moves T0 by -0.2 (the first candidate,
    # accepted, is the best of the five): 1 -> 0.8 -> 0.6 -> 0.4 (in floating point,
    # ((1 - 0.2) - 0.2) - 0.2), T1 stays 1.
    z = np.array([[math.log(3.0), 0.0]])
    y = np.array([0])
    f = cr.fit_cts_greedy(z, y, grid="1", bins=1, iterations=3, search="nudge")
    assert f.params["temperatures"] == [((1.0 - 0.2) - 0.2) - 0.2, 1.0]
    assert f.params["iterations_run"] == 3
    assert f.info["final_ece"] == pytest.approx(1 - 1 / (1 + math.exp(-math.log(3.0) / 0.4)), abs=EXACT)


def test_grid_search_hand_example():
    # The same two rows, grid "0.8,1.0,1.2", one bin, one cycle.
    # T0 (one temperature for both classes keeps both rows correct): conf (sig(0.05/T), sig(2/T))
    #   T = 0.8: (0.51562, 0.92414) -> ECE 0.28012; 1.0: 0.30335; 1.2: 0.32423 -> T0 = 0.8.
    # Cycle 0, class 0 (T1 = 0.8: class-1 scaled logit of s1 = 0.95/0.8 = 1.1875), ECE 0.28012:
    #   T0 = 0.8: the current point; 1.0: s1 wrong (1 < 1.1875), conf sig(0.1875) = 0.54674,
    #   sig(2) = 0.88080 -> ECE |0.5 - 0.71377| = 0.21377; 1.2: s1 wrong, conf
    #   sig(1.1875 - 0.8333) = 0.58763, sig(1.6667) = 0.84113 -> ECE 0.21438.
    #   constraint on: 1.0 and 1.2 lose accuracy -> no move; off: 1.0 (first minimum, < 0.28012).
    # Class 1, constraint on (class-0 scaled 1.25, 2.5): 1.0: sig(0.3) = 0.57444 -> ECE 0.25071;
    #   1.2: sig(1.25 - 0.79167) = 0.61262 -> ECE 0.23162 -> T1 = 1.2.  Result (0.8, 1.2).
    # Class 1, constraint off (class-0 scaled 1, 2; ECE 0.21377): 1.0: both correct, ECE 0.30335;
    #   1.2: both correct, sig(0.20833) = 0.55190 -> ECE 0.28365 -> no move.  Result (1.0, 0.8).
    z = np.array([[1.0, 0.95], [2.0, 0.0]])
    y = np.array([0, 0])
    f = cr.fit_cts_greedy(z, y, grid="0.8,1.0,1.2", bins=1, iterations=1, search="grid")
    assert f.params == {"temperatures": [0.8, 1.2], "iterations_run": 1, "initial_temperature": 0.8}
    assert f.info["final_ece"] == pytest.approx(1 - (sigmoid(1.25 - 0.95 / 1.2) + sigmoid(2.5)) / 2, abs=EXACT)
    f_off = cr.fit_cts_greedy(z, y, grid="0.8,1.0,1.2", bins=1, iterations=1, search="grid",
                              accuracy_constraint=False)
    assert f_off.params == {"temperatures": [1.0, 0.8], "iterations_run": 1, "initial_temperature": 0.8}
    assert f_off.info["final_ece"] == pytest.approx(abs(0.5 - (sigmoid(1.1875 - 1.0) + sigmoid(2.0)) / 2), abs=EXACT)
    # A second cycle: the constrained fit's next cycle must move nothing -> iterations_run = 2.
    f2 = cr.fit_cts_greedy(z, y, grid="0.8,1.0,1.2", bins=1, iterations=5, search="grid")
    assert f2.params["temperatures"] == [0.8, 1.2]


def test_nudge_acc_check_starting_point():
    # Rows z = [0.95, 1] (label 1) and [2, 0] (label 0), one bin, T0 = 1: both correct,
    # ECE 1 - (sig(0.05) + sig(2))/2 = 0.30335.  Class 0 (T1 = 1), candidates 0.8 .. 1.2:
    #   0.8: row 0 -> [1.1875, 1]: predicted 0, wrong; conf sig(0.1875) = 0.54674, sig(2.5) =
    #        0.92414 -> ECE |0.5 - 0.73544| = 0.23544, 1 correct
    #   0.9: row 0 wrong, conf 0.51389, 0.90222 -> ECE 0.20806, 1 correct
    #   1.0: ECE 0.30335, 2 correct;  1.1: row 0 correct again, ECE 0.30280;  1.2: ECE 0.30864
    # acc_check starting at the accuracy at T0 (2 correct): 0.8 and 0.9 are refused, 1.0 is
    # accepted (B = inf), then 1.1 (0.30280 < 0.30335) -> T_0 = 1.1.
    # acc_check starting at 0: 0.8 accepted, then 0.9 (0.20806 < 0.23544, 1 >= 1) -> T_0 = 0.9.
    z = np.array([[0.95, 1.0], [2.0, 0.0]])
    y = np.array([1, 0])
    f = cr.fit_cts_greedy(z, y, grid="1", bins=1, iterations=1, search="nudge")
    assert [t[2] for t in f.info["trace"] if t[1] == 0] == [1.0, 1.1]
    assert f.params["temperatures"][0] == 1.1 and f.info["final_correct"] == 2
    g = cr.fit_cts_greedy(z, y, grid="1", bins=1, iterations=1, search="nudge", nudge_initial_acc="zero")
    assert [t[2] for t in g.info["trace"] if t[1] == 0] == [0.8, 0.9]
    assert g.params["temperatures"][0] == 0.9 and g.info["final_correct"] == 1
