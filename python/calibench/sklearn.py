"""scikit-learn estimators over calibench's calibrators (docs/python.md, "scikit-learn").

`Calibrator` fits a calibench method on logits (or probabilities) as a scikit-learn classifier;
`CalibratedClassifier` calibrates any scikit-learn classifier's scores with cross-validation, as
sklearn.calibration.CalibratedClassifierCV does. Both call `calibench.fit` and give its numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import LeaveOneOut, check_cv, cross_val_predict
from sklearn.svm import LinearSVC
from sklearn.utils import TransformerTags, _safe_indexing, indexable
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_feature_names,
    _check_method_params,
    _num_samples,
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

import calibench

__all__ = [
    "Calibrator",
    "CalibratedClassifier",
    "TemperatureScaling",
    "VectorScaling",
    "MatrixScaling",
    "DirichletODIR",
    "HistogramBinning",
    "IsotonicCalibration",
    "PlattScaling",
    "BetaCalibration",
]


class _SavedCalibrator:
    """A fitted calibench.Calibrator inside a pickle: the engine object does not pickle, its
    to_json() text does, and Calibrator.from_json rebuilds the same transform."""

    def __init__(self, cal: calibench.Calibrator):
        self.text = cal.to_json()
        self.probs = cal.is_probs

    def load(self) -> calibench.Calibrator:
        return calibench.Calibrator.from_json(self.text, probs=self.probs)


class _OptionsMixin:
    """get_params / set_params for estimators whose calibench.fit options arrive as **options.

    BaseEstimator finds its parameters by introspecting __init__'s signature and drops **kwargs,
    so clone() (which rebuilds an estimator from get_params(deep=False)) would lose every option.
    The options live in the private dict `_options`, exactly as given; get_params adds them to the
    signature's parameters and set_params routes them back. Option names are not checked here:
    calibench.fit checks them when fit runs (one check and one message, the CLI's), as
    scikit-learn checks parameter values in fit rather than in __init__ or set_params.
    """

    def get_params(self, deep: bool = True) -> dict:
        params = super().get_params(deep=deep)
        params.update(self._options)
        return params

    def set_params(self, **params: Any):
        own = set(self._get_param_names())
        mine = {k: v for k, v in params.items() if k.split("__", 1)[0] in own}
        super().set_params(**mine)
        self._options.update({k: v for k, v in params.items() if k not in mine})
        return self

    def _fit_options(self) -> dict:
        """The options for calibench.fit; None means the method's default and is left out."""
        return {k: v for k, v in self._options.items() if v is not None}


# The engine reads floating-point values in their own precision; anything else (integers, bool,
# object arrays of numbers) becomes float64 first, which is what calibench.fit would be given.
_FLOATS = (np.float64, np.float32, np.float16)


def _probs_flag(value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"probs: expected True or False, got {value!r}")
    return bool(value)


class Calibrator(_OptionsMixin, ClassifierMixin, BaseEstimator):
    """A calibench calibration method as a scikit-learn classifier on logits.

    X: logits [N, K] (probabilities with probs=True), or one column [N, 1] of binary scores (the
    log-odds of class 1, or P(class 1): K = 2, as calibench reads binary inputs, so predict_proba
    is [N, 2]); y: integer labels in [0, K). Column j of X
    is class j, so `classes_` is always arange(K): a class absent from y keeps its column, and a
    label outside [0, K) is calibench's ValueError. fit(X, y) is calibench.fit(method, X, y,
    probs=probs, **options) and keeps the fitted calibench.Calibrator as `calibrator_`;
    predict_proba and transform give its calibrated probabilities [N, K] (float64, the same bits
    as calibench.fit(...).transform); predict is their argmax (lowest index on ties) and score the
    accuracy of that. Weight, histogram, isotonic and top-label Platt methods keep the
    uncalibrated decision in calibench's own `evaluate`; predict here follows the probabilities,
    as scikit-learn classifiers do, and can differ where those tie or reorder (ws with weight 0
    gives uniform rows).

    method: one of calibench.methods. options: the keywords of calibench.fit
    (calibench.fit_options, and bins, conventions, backend, ...); None takes the method's default.
    Floating-point X reaches the engine in its own dtype (float16/32/64; other dtypes become
    float64); NaN and infinite entries are refused by calibench, with its message.
    """

    def __init__(self, method: str = "ts", probs: bool = False, **options: Any):
        self.method = method
        self.probs = probs
        self._options = dict(options)

    def fit(self, X: Any, y: Any) -> "Calibrator":
        check_classification_targets(y)
        X = validate_data(self, X, dtype=_FLOATS, ensure_all_finite=False)
        y = column_or_1d(y, warn=True)
        self.calibrator_ = calibench.fit(self.method, X, y, probs=_probs_flag(self.probs), **self._fit_options())
        # One column is a binary score (the log-odds, or P(class 1) with probs=True): K = 2.
        self.classes_ = np.arange(2 if X.shape[1] == 1 else X.shape[1])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        # Not validate_data(reset=False): a K that differs from the fit's is calibench's error,
        # with calibench's message (the one calibench.Calibrator.transform gives).
        _check_feature_names(self, X, reset=False)
        X = check_array(X, dtype=_FLOATS, ensure_all_finite=False)
        return self.calibrator_.transform(X)

    def transform(self, X: Any) -> np.ndarray:
        """The calibrated probabilities (= predict_proba), for use inside a Pipeline."""
        return self.predict_proba(X)

    def fit_transform(self, X: Any, y: Any) -> np.ndarray:
        return self.fit(X, y).transform(X)

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags = TransformerTags()  # transform = predict_proba, [N, K] -> [N, K]
        return tags

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself, not a copy
        if isinstance(state.get("calibrator_"), calibench.Calibrator):
            state["calibrator_"] = _SavedCalibrator(state["calibrator_"])
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("calibrator_"), _SavedCalibrator):
            state = dict(state, calibrator_=state["calibrator_"].load())
        super().__setstate__(state)


class _MethodCalibrator(Calibrator):
    """A Calibrator whose method is fixed by the class (the `method` class attribute)."""

    method = ""

    def __init__(self, probs: bool = False, **options: Any):
        if "method" in options:
            raise TypeError(f"{type(self).__name__} fits method '{self.method}'; use "
                            f"calibench.sklearn.Calibrator(method=...) for another")
        self.probs = probs
        self._options = dict(options)

    def set_params(self, **params: Any):
        if "method" in params:
            raise ValueError(f"{type(self).__name__} fits method '{self.method}'; its method cannot be set")
        return super().set_params(**params)


class TemperatureScaling(_MethodCalibrator):
    """Calibrator(method="ts"): softmax(z / T)."""

    method = "ts"


class VectorScaling(_MethodCalibrator):
    """Calibrator(method="vs"): softmax(w * z + b)."""

    method = "vs"


class MatrixScaling(_MethodCalibrator):
    """Calibrator(method="ms"): softmax(W z + b)."""

    method = "ms"


class DirichletODIR(_MethodCalibrator):
    """Calibrator(method="dir_odir"): Dirichlet calibration softmax(W log p + b) with the ODIR
    penalty (odir_lambda and odir_mu fix it; otherwise 5-fold cross-validated)."""

    method = "dir_odir"


class HistogramBinning(_MethodCalibrator):
    """Calibrator(method="hist"): top-label histogram binning (calib_bins bins)."""

    method = "hist"


class IsotonicCalibration(_MethodCalibrator):
    """Calibrator(method="iso"): top-label isotonic regression of correctness on confidence."""

    method = "iso"


class PlattScaling(_MethodCalibrator):
    """Calibrator(method="platt"): sigmoid(a s + b) on z_1 - z_0 (K = 2) or on the top-label
    log-odds (K > 2)."""

    method = "platt"


class BetaCalibration(_MethodCalibrator):
    """Calibrator(method="beta"): sigmoid(a ln p - b ln(1 - p) + c) on P(class 1) (K = 2) or on
    the top-label confidence (K > 2), fitted as betacal 1.1.0 fits it (docs/calibrators.md)."""

    method = "beta"


def _response(estimator: Any) -> str:
    """The score a fitted (or to be fitted) estimator is calibrated on: decision_function when
    it has one (logits), predict_proba otherwise (probabilities)."""
    for name in ("decision_function", "predict_proba"):
        if hasattr(estimator, name):
            return name
    raise ValueError(f"{type(estimator).__name__} has neither decision_function nor predict_proba")


def _as_values(scores: Any, response: str) -> np.ndarray:
    """An estimator's scores as calibench values [N, K]: a binary decision function [N] (the
    score of classes_[1]) becomes the logits [0, s], whose softmax is [1 - sigmoid(s), sigmoid(s)]."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        if response != "decision_function":
            raise ValueError(f"predict_proba returned shape {list(scores.shape)}; expected [N, K]")
        scores = np.column_stack([np.zeros_like(scores), scores])
    return scores


class _FittedPair:
    """One fitted estimator and the calibench.Calibrator fitted on its scores."""

    def __init__(self, estimator: Any, response: str, calibrator: calibench.Calibrator):
        self.estimator = estimator
        self.response = response
        self.calibrator = calibrator

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.calibrator.transform(_as_values(getattr(self.estimator, self.response)(X), self.response))

    def __getstate__(self) -> dict:
        return dict(self.__dict__, calibrator=_SavedCalibrator(self.calibrator))

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, calibrator=state["calibrator"].load())


class CalibratedClassifier(_OptionsMixin, ClassifierMixin, BaseEstimator):
    """Calibrates a scikit-learn classifier with a calibench method and cross-validation, the
    fold logic of sklearn.calibration.CalibratedClassifierCV (scikit-learn 1.9).

    The calibrated score is the estimator's decision_function when it has one, taken as logits
    (a binary decision [N] becomes [0, s], K = 2), else its predict_proba (fitted with
    probs=True). y may hold any labels: `classes_` = the sorted distinct labels (the estimator's
    own classes_ for a prefit or frozen estimator), and calibench sees their indices [0, K).

    estimator: the classifier (None: LinearSVC(random_state=0), as scikit-learn).
    method, **options: those of calibench.fit (calibench.methods, calibench.fit_options);
    None takes the method's default.
    cv: an int (StratifiedKFold for classification, through sklearn's check_cv), a CV splitter,
    an iterable of (train, test) index arrays, None (5 folds), or "prefit": the estimator is
    already fitted and all of X, y calibrates it (scikit-learn 1.6 replaced cv="prefit" by
    FrozenEstimator(estimator), which works here too, with ensemble="auto").
    ensemble: True: per fold, a clone of the estimator fitted on the training folds and a
    calibrator fitted on its scores of the held-out fold; predict_proba averages the folds'
    calibrated probabilities (summed in fold order, then divided by the number of folds). False: the scores of
    cross_val_predict fit one calibrator, and the estimator is refitted on all the data.
    "auto" (default): False for a FrozenEstimator, True otherwise.

    Where it differs from CalibratedClassifierCV: the methods are calibench's (ts, vs, ms,
    dir_odir, hist, iso, platt, ...; not "sigmoid"/"isotonic"/"temperature"), and a calibrator
    maps all K scores jointly (softmax of calibrated logits) instead of one one-vs-rest
    regressor per class renormalised; calibench's calibrators take no sample weights (fit
    refuses sample_weight rather than weight the estimator alone), there is no n_jobs and no
    metadata routing: fit_params go to the estimator's fit (split by fold as sklearn does).
    Every training fold must contain every class (StratifiedKFold does when each class has at
    least cv samples, which fit checks as sklearn does).
    """

    def __init__(self, estimator: Any = None, method: str = "ts", cv: Any = 5, ensemble: Any = "auto",
                 **options: Any):
        self.estimator = estimator
        self.method = method
        self.cv = cv
        self.ensemble = ensemble
        self._options = dict(options)

    def _get_estimator(self) -> Any:
        return LinearSVC(random_state=0) if self.estimator is None else self.estimator

    def _calibrate(self, estimator: Any, scores: Any, y_index: np.ndarray) -> _FittedPair:
        """A calibrator fitted on an estimator's scores of held-out samples."""
        response = _response(estimator)
        fitted = getattr(estimator, "classes_", None)
        if fitted is not None and not np.array_equal(np.asarray(fitted), self.classes_):
            raise ValueError(f"{type(estimator).__name__} was fitted on the classes {list(fitted)}, not on all of "
                             f"{list(self.classes_)}: every training fold needs every class")
        values = _as_values(scores, response)
        calibrator = calibench.fit(self.method, values, y_index, probs=response == "predict_proba",
                                   **self._fit_options())
        return _FittedPair(estimator, response, calibrator)

    def fit(self, X: Any, y: Any, **fit_params: Any) -> "CalibratedClassifier":
        if "sample_weight" in fit_params:
            raise ValueError("sample_weight: calibench's calibrators take no sample weights; fit the estimator with "
                             "them and calibrate it with FrozenEstimator or cv='prefit' if that is what is meant")
        check_classification_targets(y)
        X, y = indexable(X, y)
        y = column_or_1d(y, warn=True)
        estimator = self._get_estimator()
        prefit = isinstance(self.cv, str) and self.cv == "prefit"
        frozen = prefit or isinstance(estimator, FrozenEstimator)
        if frozen:
            check_is_fitted(estimator, attributes=["classes_"])
            self.classes_ = np.asarray(estimator.classes_)
        else:
            self.classes_ = np.unique(y)
        y_index = np.searchsorted(self.classes_, y)
        unknown = (y_index >= len(self.classes_)) | (self.classes_[np.minimum(y_index, len(self.classes_) - 1)] != y)
        if np.any(unknown):
            raise ValueError(f"y: label {y[np.argmax(unknown)]!r} is not one of the estimator's classes "
                             f"{list(self.classes_)}")

        if prefit:
            self.calibrated_classifiers_ = [self._calibrate(estimator, getattr(estimator, _response(estimator))(X),
                                                            y_index)]
        else:
            self.calibrated_classifiers_ = self._fit_folds(estimator, X, y, y_index, fit_params)

        first = self.calibrated_classifiers_[0].estimator
        if hasattr(first, "n_features_in_"):
            self.n_features_in_ = first.n_features_in_
        if hasattr(first, "feature_names_in_"):
            self.feature_names_in_ = first.feature_names_in_
        return self

    def _fit_folds(self, estimator, X, y, y_index, fit_params) -> list:
        """CalibratedClassifierCV.fit's cross-validation (sklearn/calibration.py, 1.9)."""
        ensemble = self.ensemble
        if isinstance(ensemble, str) and ensemble == "auto":
            ensemble = not isinstance(estimator, FrozenEstimator)
        elif not isinstance(ensemble, (bool, np.bool_)):
            raise ValueError(f"ensemble: expected True, False or 'auto', got {ensemble!r}")
        if isinstance(self.cv, int):
            n_folds = self.cv
        elif hasattr(self.cv, "n_splits"):
            n_folds = self.cv.n_splits
        else:
            n_folds = None
        if n_folds and np.any(np.unique(y, return_counts=True)[1] < n_folds):
            raise ValueError(f"Requesting {n_folds}-fold cross-validation but provided less than {n_folds} examples "
                             "for at least one class.")
        if isinstance(self.cv, LeaveOneOut):
            raise ValueError("LeaveOneOut cross-validation does not allow all classes to be present in test splits. "
                             "Please use a cross-validation generator that allows all classes to appear in every "
                             "test and train split.")
        cv = check_cv(self.cv, y, classifier=True)

        if ensemble:
            pairs = []
            for train, test in cv.split(X, y):
                this = clone(estimator).fit(_safe_indexing(X, train), y[train],
                                            **_check_method_params(X, params=fit_params, indices=train))
                scores = getattr(this, _response(this))(_safe_indexing(X, test))
                pairs.append(self._calibrate(this, scores, y_index[test]))
            return pairs
        this = clone(estimator)
        scores = cross_val_predict(this, X, y, cv=cv, method=_response(this), params=fit_params)
        this.fit(X, y, **fit_params)
        return [self._calibrate(this, scores, y_index)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """The calibrated probabilities [N, K] (columns in classes_ order): the mean over the
        fitted (estimator, calibrator) pairs."""
        check_is_fitted(self)
        total = np.zeros((_num_samples(X), len(self.classes_)))
        for pair in self.calibrated_classifiers_:
            total += pair.predict_proba(X)
        return total / len(self.calibrated_classifiers_)

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self._get_estimator().__sklearn_tags__().input_tags.sparse
        return tags
