# calibench.sklearn: scikit-learn's estimator checks on Calibrator and CalibratedClassifier,
# clone / pickle / get_params, and every number against calibench.fit (bit for bit) or a
# fold-by-fold fit of the same folds done by hand.
import copy
import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_predict  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import calibench  # noqa: E402
from calibench.sklearn import (  # noqa: E402
    CalibratedClassifier,
    Calibrator,
    DirichletODIR,
    HistogramBinning,
    IsotonicCalibration,
    MatrixScaling,
    PlattScaling,
    TemperatureScaling,
    VectorScaling,
)

SEED = 20261207

# The checks Calibrator fails, and why. Its X is a logit matrix whose column j is class j, with
# labels in [0, K); several checks fit it on feature matrices whose labels have nothing to do
# with the columns. The others meet calibench's own input rules, whose messages it keeps.
_LABELS_NOT_COLUMNS = "fits X with 2 columns (make_blobs features) on labels 0, 1, 2: label 2 is outside [0, K)"
CALIBRATOR_EXPECTED_FAILURES = {
    "check_estimators_overwrite_params": _LABELS_NOT_COLUMNS,
    "check_estimators_fit_returns_self": _LABELS_NOT_COLUMNS,
    "check_readonly_memmap_input": _LABELS_NOT_COLUMNS,
    "check_classifier_data_not_an_array": _LABELS_NOT_COLUMNS,
    "check_classifiers_train": "make_blobs features are not logits: the binary case's training accuracy (> 0.83 "
                               "wanted) is that of argmax over 2 feature columns; the 3-class case puts labels "
                               "0..2 on 2 columns",
    "check_classifiers_train(readonly_memmap=True)": "as check_classifiers_train",
    "check_classifiers_train(readonly_memmap=True,X_dtype=float32)": "as check_classifiers_train",
    "check_classifiers_classes": "string and non-contiguous labels: a label is the index of its column of X",
    "check_classifiers_one_label": "y = np.ones(10) is float; calibench reads integer labels only ('expected "
                                   "integer labels, found float64')",
    "check_estimators_nan_inf": "calibench refuses NaN and inf itself ('val_logits: non-finite value nan at index "
                                "[0, 0]'), which the check's case-sensitive 'inf' | 'NaN' pattern does not match "
                                "for NaN",
    "check_fit2d_1feature": "one column is a binary score (K = 2); the check's labels 0..2 are outside [0, 2), "
                            "refused with calibench's message, not the '1 feature(s)' message the check wants",
    "check_n_features_in_after_fitting": "a K other than the fit's is calibench's error with calibench's message "
                                         "('K = 3, but this ts calibrator was fitted on K = 4'; K = 1: 'need at "
                                         "least 2 classes'), not sklearn's 'X has 1 features, but ...'",
}

# CalibratedClassifier passes every check that applies (none expected to fail).
CALIBRATED_CLASSIFIER_EXPECTED_FAILURES: dict = {}


def _expected_failed(estimator):
    if isinstance(estimator, CalibratedClassifier):
        return CALIBRATED_CLASSIFIER_EXPECTED_FAILURES
    return CALIBRATOR_EXPECTED_FAILURES


@parametrize_with_checks(
    [Calibrator(), TemperatureScaling(), CalibratedClassifier(LogisticRegression(C=1), cv=3)],
    expected_failed_checks=_expected_failed,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _logits(n, k, seed, scale=2.0):
    """Normal logits [n, k] and labels drawn from softmax(z / 1.7) (a model that is overconfident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=scale, size=(n, k))
    p = np.exp((z - z.max(axis=1, keepdims=True)) / 1.7)
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return z, np.minimum(y, k - 1)


# (method, options): every method is compared with calibench.fit on K = 5 and K = 2 logits.
METHODS = [
    ("ts", {}),
    ("ts", {"objective": "ece", "grid": "0.5:3:0.05"}),
    ("vs", {}),
    ("ms", {}),
    ("dir_odir", {"odir_lambda": 1e-3, "odir_mu": 1e-3}),
    ("hist", {"calib_bins": 10}),
    ("iso", {}),
    ("platt", {}),
    ("ws", {}),
    ("cws", {"calib_bins": 5}),
]


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("method,options", METHODS)
def test_calibrator_equals_calibench_fit(method, options, k):
    z, y = _logits(600, k, SEED + k)
    z_test, _ = _logits(300, k, SEED + 100 + k)
    est = Calibrator(method, **options).fit(z, y)
    ref = calibench.fit(method, z, y, **options)
    assert est.calibrator_.params == ref.params
    got = est.predict_proba(z_test)
    want = ref.transform(z_test)
    assert got.dtype == np.float64 and np.array_equal(got, want), f"seed {SEED + k}"
    assert np.array_equal(est.transform(z_test), want)
    assert np.array_equal(est.predict(z_test), np.argmax(want, axis=1))
    assert est.score(z_test, np.argmax(want, axis=1)) == 1.0
    assert np.array_equal(est.classes_, np.arange(k)) and est.n_features_in_ == k


def test_calibrator_on_probabilities_and_float32():
    z, y = _logits(500, 4, SEED)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    est = Calibrator("ts", probs=True).fit(p, y)
    ref = calibench.fit("ts", p, y, probs=True)
    assert est.calibrator_.is_probs and est.calibrator_.params == ref.params
    assert np.array_equal(est.predict_proba(p), ref.transform(p))
    z32 = z.astype(np.float32)  # handed to the engine as float32, as calibench.fit gets it
    assert np.array_equal(Calibrator("vs").fit(z32, y).predict_proba(z32), calibench.fit("vs", z32, y).transform(z32))


@pytest.mark.parametrize(
    "cls,method", [(TemperatureScaling, "ts"), (VectorScaling, "vs"), (MatrixScaling, "ms"),
                   (DirichletODIR, "dir_odir"), (HistogramBinning, "hist"), (IsotonicCalibration, "iso"),
                   (PlattScaling, "platt")])
def test_named_calibrators(cls, method):
    z, y = _logits(400, 3, SEED)
    options = {"odir_lambda": 1e-2, "odir_mu": 1e-2} if method == "dir_odir" else {}
    est = cls(**options).fit(z, y)
    assert est.method == method and "method" not in est.get_params()
    assert np.array_equal(est.predict_proba(z), calibench.fit(method, z, y, **options).transform(z))
    assert type(clone(est)) is cls and clone(est).get_params() == est.get_params()
    with pytest.raises(TypeError, match="Calibrator\\(method=...\\)"):
        cls(method="ts")
    with pytest.raises(ValueError, match="cannot be set"):
        cls().set_params(method="ts")


def test_params_clone_and_set_params():
    est = Calibrator("ts", objective="ece", grid="0.5:2:0.1", bins=10)
    assert est.get_params() == {"method": "ts", "probs": False, "objective": "ece", "grid": "0.5:2:0.1", "bins": 10}
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    twin.set_params(grid="1:3:0.5", method="ts", calib_bins=None)
    assert twin.get_params()["grid"] == "1:3:0.5" and est.get_params()["grid"] == "0.5:2:0.1"
    z, y = _logits(300, 3, SEED)
    ref = calibench.fit("ts", z, y, objective="ece", grid="1:3:0.5", bins=10)
    assert twin.fit(z, y).calibrator_.params == ref.params  # calib_bins=None: left to the method
    assert "grid=" in repr(est) and "objective='ece'" in repr(est)

    outer = CalibratedClassifier(LogisticRegression(C=0.5), method="vs", cv=3, iterations=50)
    params = outer.get_params()
    assert params["estimator__C"] == 0.5 and params["iterations"] == 50 and params["cv"] == 3
    outer.set_params(estimator__C=2.0, iterations=20)
    assert outer.estimator.C == 2.0 and outer.get_params()["iterations"] == 20
    assert clone(outer).get_params(deep=False)["iterations"] == 20


def test_grid_search_over_an_option():
    z, y = _logits(600, 3, SEED)
    search = GridSearchCV(HistogramBinning(), {"calib_bins": [5, 10, 20]}, cv=3, scoring="neg_log_loss").fit(z, y)
    assert search.best_params_["calib_bins"] in (5, 10, 20)
    assert len(search.best_estimator_.calibrator_.params["values"]) == search.best_params_["calib_bins"]


@pytest.mark.parametrize("method,options", [("ts", {}), ("ms", {}), ("iso", {}), ("cws", {}),
                                            ("dir_odir", {"odir_lambda": 1e-3, "odir_mu": 1e-3})])
def test_pickle_round_trip(method, options):
    z, y = _logits(400, 4, SEED)
    est = Calibrator(method, **options).fit(z, y)
    back = pickle.loads(pickle.dumps(est))
    assert back.get_params() == est.get_params()
    assert np.array_equal(back.predict_proba(z), est.predict_proba(z))
    assert np.array_equal(copy.deepcopy(est).predict_proba(z), est.predict_proba(z))

    X, labels = make_classification(n_samples=300, n_features=8, n_informative=5, n_classes=3, random_state=0)
    outer = CalibratedClassifier(LogisticRegression(), method=method, cv=3, **options).fit(X, labels)
    assert np.array_equal(pickle.loads(pickle.dumps(outer)).predict_proba(X), outer.predict_proba(X))


def test_calibrator_errors():
    z, y = _logits(200, 4, SEED)
    est = Calibrator("ts").fit(z, y)
    with pytest.raises(ValueError) as caught:
        est.predict_proba(z[:, :3])
    with pytest.raises(ValueError) as engine:
        calibench.fit("ts", z, y).transform(z[:, :3])
    assert str(caught.value) == str(engine.value) and "K = 3" in str(caught.value)
    bad = y.copy()
    bad[7] = 4
    with pytest.raises(ValueError) as caught:
        Calibrator("ts").fit(z, bad)
    with pytest.raises(ValueError) as engine:
        calibench.fit("ts", z, bad)
    assert str(caught.value) == str(engine.value)
    with pytest.raises(ValueError) as caught:
        Calibrator("ts", calib_bins=5).fit(z, y)  # an option the method does not take
    with pytest.raises(ValueError) as engine:
        calibench.fit("ts", z, y, calib_bins=5)
    assert str(caught.value) == str(engine.value)
    with pytest.raises(ValueError) as caught:
        Calibrator("no_such_method").fit(z, y)
    with pytest.raises(ValueError) as engine:
        calibench.fit("no_such_method", z, y)
    assert str(caught.value) == str(engine.value)


def _dataset(n_classes):
    return make_classification(n_samples=400, n_features=10, n_informative=6, n_classes=n_classes,
                               n_clusters_per_class=1, random_state=n_classes)


def _by_hand(X, y, method, options, ensemble, make, response="decision_function", folds=5):
    """CalibratedClassifierCV's fold logic written out: StratifiedKFold(folds), per fold a fresh
    estimator fitted on the training folds and a calibrator on its held-out scores."""
    k = len(np.unique(y))
    probs = response == "predict_proba"

    def values(est, rows):
        s = getattr(est, response)(X[rows] if rows is not None else X)
        return np.column_stack([np.zeros_like(s), s]) if s.ndim == 1 else s

    splits = list(StratifiedKFold(folds).split(X, y))
    if ensemble:
        total = np.zeros((len(y), k))
        for train, test in splits:
            est = make().fit(X[train], y[train])
            cal = calibench.fit(method, values(est, test), y[test], probs=probs, **options)
            total += cal.transform(values(est, None))
        return total / folds
    s = cross_val_predict(make(), X, y, cv=StratifiedKFold(folds), method=response)
    s = np.column_stack([np.zeros_like(s), s]) if s.ndim == 1 else s
    cal = calibench.fit(method, s, y, probs=probs, **options)
    return cal.transform(values(make().fit(X, y), None))


@pytest.mark.parametrize("ensemble", [True, False])
@pytest.mark.parametrize("n_classes,method,options", [(4, "ts", {}), (4, "vs", {}), (2, "ts", {}), (2, "platt", {}),
                                                      (3, "dir_odir", {"odir_lambda": 1e-3, "odir_mu": 1e-3})])
def test_calibrated_classifier_equals_folds_by_hand(n_classes, method, options, ensemble):
    X, y = _dataset(n_classes)
    make = lambda: LogisticRegression(max_iter=200)  # noqa: E731
    est = CalibratedClassifier(make(), method=method, cv=5, ensemble=ensemble, **options).fit(X, y)
    want = _by_hand(X, y, method, options, ensemble, make)
    got = est.predict_proba(X)
    assert np.array_equal(got, want)
    assert np.array_equal(est.predict(X), np.argmax(want, axis=1))
    assert len(est.calibrated_classifiers_) == (5 if ensemble else 1) and est.n_features_in_ == 10


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_calibrated_classifier_string_labels_and_proba_only():
    X, y = _dataset(3)
    names = np.array(["cat", "dog", "emu"])[y]
    make = lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0)  # noqa: E731
    est = CalibratedClassifier(make(), method="ts", cv=3).fit(X, names)
    assert list(est.classes_) == ["cat", "dog", "emu"]
    assert est.calibrated_classifiers_[0].response == "predict_proba"
    assert est.calibrated_classifiers_[0].calibrator.is_probs
    want = _by_hand(X, y, "ts", {}, True, make, response="predict_proba", folds=3)
    assert np.array_equal(est.predict_proba(X), want)
    assert np.array_equal(est.predict(X), np.array(["cat", "dog", "emu"])[np.argmax(want, axis=1)])


def test_calibrated_classifier_prefit_and_frozen():
    X, y = _dataset(3)
    base = LogisticRegression(max_iter=200).fit(X[:300], y[:300])
    ref = calibench.fit("ts", base.decision_function(X[300:]), y[300:])
    prefit = CalibratedClassifier(base, cv="prefit").fit(X[300:], y[300:])
    assert np.array_equal(prefit.predict_proba(X), ref.transform(base.decision_function(X)))
    assert prefit.calibrated_classifiers_[0].estimator is base
    frozen = CalibratedClassifier(FrozenEstimator(base)).fit(X[300:], y[300:])  # ensemble="auto": one calibrator
    assert len(frozen.calibrated_classifiers_) == 1
    assert np.array_equal(frozen.predict_proba(X), ref.transform(base.decision_function(X)))


def test_binary_decision_function_is_logits_zero_and_s():
    X, y = _dataset(2)
    base = LogisticRegression(max_iter=200).fit(X[:200], y[:200])
    s = base.decision_function(X)
    ref = calibench.fit("vs", np.column_stack([np.zeros(200), s[200:]]), y[200:])  # vs: not shift-invariant
    est = CalibratedClassifier(base, method="vs", cv="prefit").fit(X[200:], y[200:])
    assert np.array_equal(est.predict_proba(X), ref.transform(np.column_stack([np.zeros_like(s), s])))


def test_calibrated_classifier_errors():
    X, y = _dataset(3)
    with pytest.raises(ValueError, match="sample weights"):
        CalibratedClassifier(LogisticRegression()).fit(X, y, sample_weight=np.ones(len(y)))
    with pytest.raises(ValueError, match="Requesting 5-fold"):
        CalibratedClassifier(LogisticRegression()).fit(X[:12], y[:12])
    ordered = np.argsort(y, kind="stable")  # unshuffled KFold(3) on sorted labels: a class missing per fold
    with pytest.raises(ValueError, match="every training fold needs every class"):
        CalibratedClassifier(LogisticRegression(), cv=KFold(3)).fit(X[ordered], y[ordered])
    base = LogisticRegression().fit(X[y < 2], y[y < 2])
    with pytest.raises(ValueError, match="not one of the estimator's classes"):
        CalibratedClassifier(base, cv="prefit").fit(X, y)
    with pytest.raises(ValueError) as caught:
        CalibratedClassifier(LogisticRegression(), method="ts", cv=3, calib_bins=4).fit(X, y)
    with pytest.raises(ValueError) as engine:
        calibench.fit("ts", np.zeros((3, 3)), [0, 1, 2], calib_bins=4)
    assert str(caught.value) == str(engine.value)


def test_one_column_is_a_binary_score():
    rng = np.random.default_rng(31)
    y = rng.integers(0, 2, 400)
    s = ((2.0 * y - 1.0) + rng.normal(size=400)).reshape(-1, 1)
    cal = Calibrator("platt").fit(s, y)
    assert list(cal.classes_) == [0, 1]
    want = calibench.fit("platt", s, y).transform(s)
    assert want.shape == (400, 2) and np.array_equal(cal.predict_proba(s), want)
    assert np.array_equal(cal.predict(s), np.argmax(want, axis=1))
