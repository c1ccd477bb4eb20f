"""calibench from Python: the C++ engine's calibration metrics, calibrators and batch sweeps
on NumPy arrays and PyTorch tensors, without a file round trip.

    import calibench
    metrics = calibench.evaluate(logits, labels, bins=15)          # the keys of `calibench eval --format json`
    cal = calibench.fit("ts", val_logits, val_labels)               # as `calibench fit --method ts`
    probs = cal.transform(test_logits)                              # calibrated probabilities (float64)
    sweep = calibench.sweep_temperatures(logits, labels, temperatures=np.linspace(0.5, 5, 1000))

Values may be float16, bfloat16, float32 or float64 ([N, K]); labels any integer type ([N] or
[N, 1]). Anything with `__dlpack__` (PyTorch, JAX, CuPy on the host) or the array protocol is
accepted; tensors on a GPU must be moved to the CPU first. Bad input raises ValueError with the
engine's message (naming the argument and the first offending index); other engine failures
raise RuntimeError. docs/python.md says exactly where inputs are copied.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

# OpenMP threads that spin between parallel regions (libgomp's default) compete with the Python
# thread for the cores: on a 2-vCPU machine a 2,000 x 10 ECE took 28 ms spinning and 0.9 ms
# passive, while large sweeps take the same time either way. libgomp reads this once, when it is
# loaded (here, by _core, unless something loaded it before); a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _core  # noqa: E402  (after the OpenMP setting above)
from .inputs import InputError, read_lm_eval, read_table  # noqa: E402  (numpy only; pyarrow when reading Parquet)
from .results import load_results  # noqa: E402  (pandas is imported when it is called)

__all__ = [
    "evaluate",
    "fit",
    "Calibrator",
    "sweep",
    "sweep_temperatures",
    "sweep_weights",
    "top_label_metrics",
    "read_dump",
    "write_dump",
    "dump_info",
    "methods",
    "fit_options",
    "presets",
    "device_info",
    "set_progress",
    "load_results",
    "read_lm_eval",
    "read_table",
    "InputError",
    "plot_reliability",
    "plot_data",
    "__version__",
]

__version__: str = _core.version()

#: The calibration methods of `fit` (docs/calibrators.md).
methods: Tuple[str, ...] = tuple(_core.method_names())
#: The options of `fit` (the keys of `calibench fit`'s flags and of sweep specs).
fit_options: Tuple[str, ...] = tuple(_core.fit_option_keys())
#: The conventions presets of `evaluate(conventions=...)` (docs/metrics.md).
presets: Tuple[str, ...] = tuple(_core.preset_names())

_DLPACK_CPU = 1  # DLDeviceType kDLCPU


def _array(x: Any, name: str) -> Any:
    """What the engine can read: NumPy arrays and DLPack exporters as they are (no copy),
    other sequences through numpy.asarray."""
    if isinstance(x, np.ma.MaskedArray):
        if np.ma.getmaskarray(x).any():
            first = tuple(int(i) for i in np.argwhere(np.ma.getmaskarray(x))[0])
            raise ValueError(f"{name}: masked array with a masked entry at index {list(first)}; calibench reads "
                             "every entry: fill or drop the masked ones first")
        x = np.ma.getdata(x)
    if not isinstance(x, np.ndarray) and hasattr(x, "__dlpack__"):
        if getattr(x, "requires_grad", False):
            x = x.detach()  # a tensor that requires grad refuses to export itself
        device = getattr(x, "__dlpack_device__", None)
        if device is not None:
            kind = device()[0]
            if int(kind) != _DLPACK_CPU:
                raise ValueError(
                    f"{name}: the array lives on DLPack device type {int(kind)}; calibench reads host memory: "
                    "move it to the CPU first (e.g. tensor.cpu())"
                )
        return x
    if not isinstance(x, np.ndarray):
        # Tensors of frameworks without DLPack, lists and other sequences.
        x = np.asarray(x.numpy() if hasattr(x, "numpy") and callable(x.numpy) else x)
    if x.dtype.kind not in "biufc" or (x.dtype.kind == "f" and x.dtype.itemsize > 8):
        raise ValueError(f"{name}: unsupported array dtype {x.dtype}")
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))  # DLPack holds native byte order only
    return x


def _binary_scores(x: Any) -> Optional[np.ndarray]:
    """The scores of a binary input (one per row: shape [N] or [N, 1]) as a NumPy array, or
    None when x has another shape (the engine then reads it, or refuses it, as it is)."""
    shape = tuple(getattr(x, "shape", ()))
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        return None
    if isinstance(x, np.ndarray):
        return x.reshape(-1)
    try:
        return np.from_dlpack(x).reshape(-1)
    except (TypeError, BufferError, RuntimeError):  # e.g. bfloat16, which NumPy has no type for
        return np.asarray(x.float() if hasattr(x, "float") else x).reshape(-1)


def _scores(x: Any, name: str, probs: bool) -> Tuple[Any, bool]:
    """(values the engine reads, binary): a binary input ([N] or [N, 1]: the log-odds of class 1,
    or P(class 1) with probs=True) becomes K = 2 rows [0, s] (logits, in their dtype) or
    [1 - p, p] (float64), as a binary dump does (docs/metrics.md, "Inputs"); anything else is
    passed on as _array gives it."""
    values = _array(x, name)
    s = _binary_scores(values)
    if s is None:
        return values, False
    if s.dtype.kind != "f":
        raise ValueError(f"{name}: expected floating-point values (float16, bfloat16, float32 or float64), "
                         f"found {s.dtype}")
    if s.size == 0:
        raise ValueError(f"{name}: N = 0 samples (shape {list(values.shape)})")
    column = len(values.shape) == 2
    where = (lambda i: f"[{i}, 0]") if column else (lambda i: f"[{i}]")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise ValueError(f"{name}: non-finite value {float(s[bad[0]])} at index {where(int(bad[0]))}")
    if probs:
        bad = np.flatnonzero((s < 0) | (s > 1))
        if bad.size:
            raise ValueError(f"{name}: probability {float(s[bad[0]])} at index {where(int(bad[0]))} outside [0, 1] "
                             "(a binary input holds P(class 1))")
        out = np.empty((s.size, 2), dtype=np.float64)
        out[:, 1] = s
        out[:, 0] = 1.0 - out[:, 1]
        return out, True
    out = np.zeros((s.size, 2), dtype=s.dtype if s.dtype.itemsize <= 8 else np.float64)
    out[:, 1] = s
    return out, True


def _integer(value: Any, name: str) -> int:
    """An integer argument: ints and NumPy integers (15.5, "15" and True are refused, not truncated)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    return int(value)


def _call_with_arrays(fn, *args):
    """Calls into the engine; an exporter that nanobind cannot import through DLPack (old
    framework versions) is retried through NumPy's array protocol."""
    try:
        return fn(*args)
    except TypeError:
        converted = [np.asarray(a) if hasattr(a, "__dlpack__") and not isinstance(a, np.ndarray) else a for a in args]
        if all(c is a for c, a in zip(converted, args)):
            raise
        return fn(*converted)


def _conventions(conventions: str, binning, classwise_binning, adaptive, classwise_reduction, brier, nll_clip):
    c = _core._conventions()
    c.preset = conventions
    c.binning = binning or ""
    c.classwise_binning = classwise_binning or ""
    c.adaptive = adaptive or ""
    c.classwise_reduction = classwise_reduction or ""
    c.brier = brier or ""
    c.nll_clip = math.nan if nll_clip is None else float(nll_clip)
    return c


def _metric_names(metrics: Union[None, str, Sequence[str]]) -> str:
    """`metrics` as `eval --metrics` spells it: None is every metric."""
    if metrics is None:
        return "all"
    if isinstance(metrics, str):
        return metrics
    names = list(metrics)
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"metrics: expected metric names, got {name!r}")
    if not names:
        raise ValueError("metrics: an empty list selects nothing (None selects every metric)")
    return ",".join(names)


def evaluate(
    logits_or_probs: Any,
    labels: Any,
    bins: int = 15,
    probs: bool = False,
    conventions: str = "calibench",
    binning: Optional[str] = None,
    classwise_binning: Optional[str] = None,
    adaptive: Optional[str] = None,
    classwise_reduction: Optional[str] = None,
    brier: Optional[str] = None,
    nll_clip: Optional[float] = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
    reliability: bool = False,
    classwise: bool = False,
    metrics: Union[None, str, Sequence[str]] = None,
) -> dict:
    """Every metric of `calibench eval` (docs/metrics.md) for one split.

    Returns the object `calibench eval --format json` prints: the keys n, k, accuracy, ece, mce,
    adaece, sce, ace, nll, brier, auroc, precision, recall, f1, r_auc, rmsce, rmsce_debiased,
    ace_unweighted, smece, kde_ece, ks_error, ece_sweep, aurc, eaurc, brier_reliability,
    brier_resolution, brier_uncertainty and conventions; with bootstrap > 0 also "bootstrap" and "ci"
    ({metric: {"low", "high"}}); with reliability=True also "reliability"; with classwise=True
    also "classwise" (`eval --classwise`: per class count, accuracy, ece, under, over; per bin
    under, over). Non-finite values are None, as JSON prints null. metrics: only these metric
    keys are computed and returned (names or one comma-separated string, as `eval --metrics`;
    None: every metric but the on-request "skce" and "skce_pvalue", O(N^2 K), which must be named).

    logits_or_probs: [N, K] logits, or probabilities with probs=True (validated: no negative
    entry, rows sum to 1 within 1e-3). bins: M. conventions: a preset name (calibench.presets);
    binning, classwise_binning, adaptive, classwise_reduction, brier, nll_clip override it as
    the CLI options of the same names do. bootstrap, seed, level: percentile intervals.
    """
    name = "probs" if probs else "logits"
    values, binary = _scores(logits_or_probs, name, bool(probs))
    y = _array(labels, "labels")
    conv = _conventions(conventions, binning, classwise_binning, adaptive, classwise_reduction, brier, nll_clip)
    out = _call_with_arrays(
        lambda v, t: _core.evaluate(
            v, t, bool(probs), _integer(bins, "bins"), conv, _integer(bootstrap, "bootstrap"), _integer(seed, "seed"),
            float(level), bool(reliability), bool(classwise), _metric_names(metrics), name
        ),
        values,
        y,
    )
    if binary:
        out["binary"] = True  # as `calibench eval` says of a binary dump
    return out


def _grid_text(grid: Union[None, str, Sequence[float], np.ndarray]) -> str:
    """A candidate grid as `--grid` spells it: "start:stop:step", "v1,v2,..." or a sequence of
    numbers (written exactly, shortest round-trip form)."""
    if grid is None:
        return ""
    if isinstance(grid, str):
        return grid
    values = np.asarray(grid, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("grid: no candidates")
    return ",".join(repr(float(v)) for v in values)


class Calibrator:
    """A fitted calibrator (docs/calibrators.md).

    method: the method name. params: the dict `calibench fit --format json` prints as "params".
    is_probs: whether it was fitted on (and so transforms) probabilities. backend: the sweep
    backend that fitted it.
    """

    def __init__(self, impl: Any):
        self._impl = impl

    @property
    def method(self) -> str:
        return self._impl.method

    @property
    def params(self) -> dict:
        return self._impl.params()

    @property
    def is_probs(self) -> bool:
        return self._impl.is_probs

    @property
    def backend(self) -> str:
        return self._impl.backend

    def transform(self, logits: Any, probs: Optional[bool] = None) -> np.ndarray:
        """Calibrated probabilities [N, K] (float64) of logits (or probabilities when the
        calibrator was fitted on probabilities, or with probs=True). Weight methods (ws, cws)
        keep the uncalibrated decision, which their probabilities may no longer show (weight 0
        gives uniform rows); `evaluate` scores with that decision as `calibench fit` does."""
        is_probs = self.is_probs if probs is None else bool(probs)
        name = "probs" if is_probs else "logits"
        values, _ = _scores(logits, name, is_probs)
        return _call_with_arrays(lambda v: self._impl.transform(v, is_probs, name), values)

    def outputs(self, logits: Any, probs: Optional[bool] = None) -> dict:
        """The calibrator's per-sample outputs besides the probabilities, by name, as `calibench
        fit --save` writes them: venn_abers gives "venn_abers_p0" and "venn_abers_p1", the
        interval [p0, p1] of P(class 1) for K = 2 ([N]) or of each one-vs-one pair for K > 2
        ([N, pairs], the pairs in params["pairs"] order); every other method an empty dict."""
        is_probs = self.is_probs if probs is None else bool(probs)
        name = "probs" if is_probs else "logits"
        values, _ = _scores(logits, name, is_probs)
        return _call_with_arrays(lambda v: self._impl.outputs(v, is_probs, name), values)

    def evaluate(
        self,
        logits: Any,
        labels: Any,
        bins: int = 15,
        probs: Optional[bool] = None,
        conventions: str = "calibench",
        binning: Optional[str] = None,
        classwise_binning: Optional[str] = None,
        adaptive: Optional[str] = None,
        classwise_reduction: Optional[str] = None,
        brier: Optional[str] = None,
        nll_clip: Optional[float] = None,
        bootstrap: int = 0,
        seed: int = 0,
        level: float = 0.95,
        reliability: bool = False,
        classwise: bool = False,
        metrics: Union[None, str, Sequence[str]] = None,
    ) -> dict:
        """The metrics of the calibrated scores, as `calibench fit --format json` reports them
        under "val" and "test" (same keys as `calibench.evaluate`)."""
        is_probs = self.is_probs if probs is None else bool(probs)
        name = "probs" if is_probs else "logits"
        values, _ = _scores(logits, name, is_probs)
        y = _array(labels, "labels")
        conv = _conventions(conventions, binning, classwise_binning, adaptive, classwise_reduction, brier, nll_clip)
        return _call_with_arrays(
            lambda v, t: self._impl.evaluate(
                v, t, is_probs, _integer(bins, "bins"), conv, _integer(bootstrap, "bootstrap"), _integer(seed, "seed"),
                float(level), bool(reliability), bool(classwise), _metric_names(metrics), name
            ),
            values,
            y,
        )

    def to_json(self) -> str:
        """{"method": ..., "params": ...}: the `calibrator` attribute `calibench fit --save` writes."""
        return self._impl.to_json()

    @classmethod
    def from_json(cls, text: Union[str, Mapping[str, Any]], probs: bool = False) -> "Calibrator":
        """A calibrator from `to_json()` output (or the `calibrator` attribute of a `fit --save`
        file); probs: whether it transforms probabilities."""
        if not isinstance(text, str):
            text = json.dumps(text)
        return cls(_core.calibrator_from_json(text, bool(probs)))

    def __repr__(self) -> str:
        return f"Calibrator({self.method!r}, params={self.params!r})"


def _option_text(key: str, value: Any) -> str:
    """A fit option's value as the text the request parser reads (the CLI spelling)."""
    if key == "grid":
        return _grid_text(value)
    if key == "accuracy_constraint":
        if isinstance(value, (bool, np.bool_)):
            return "on" if value else "off"
        if value not in ("on", "off"):
            raise ValueError(f"accuracy_constraint must be True, False, 'on' or 'off' (got {value!r})")
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "on" if value else "off"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return str(value)


def fit(
    method: str,
    val_logits: Any,
    val_labels: Any,
    *,
    probs: bool = False,
    objective: Optional[str] = None,
    grid: Union[None, str, Sequence[float], np.ndarray] = None,
    calib_bins: Union[None, int, str] = None,
    iterations: Optional[int] = None,
    accuracy_constraint: Union[None, bool, str] = None,
    cts_search: Optional[str] = None,
    odir_lambda: Optional[float] = None,
    odir_mu: Optional[float] = None,
    train: Optional[dict] = None,
    bins: int = 15,
    conventions: str = "calibench",
    binning: Optional[str] = None,
    classwise_binning: Optional[str] = None,
    adaptive: Optional[str] = None,
    classwise_reduction: Optional[str] = None,
    brier: Optional[str] = None,
    nll_clip: Optional[float] = None,
    backend: str = "auto",
    **options: Any,
) -> Calibrator:
    """Fits a calibration method on validation logits, as `calibench fit --method METHOD` does
    on a dump's /val (docs/calibrators.md).

    method: one of calibench.methods (the engine's registry: ts, ws, ..., hist, iso, platt,
    the loss-trained BASE+LOSS such as ts+sctl; docs/calibrators.md). The fit options are those of
    `calibench fit` and of sweep specs, with underscores (calibench.fit_options lists them):
    objective (ts: nll | ece | adaece; ets: nll | mse), grid ("start:stop:step", "v1,v2,..."
    or a sequence of numbers), calib_bins (an integer or "auto"; hist: its bins), iterations
    (cts_greedy cycles, vs / ms / cts_nll L-BFGS iterations at most), accuracy_constraint
    (True/False or "on"/"off"), cts_search (grid | nudge), odir_lambda and odir_mu (ms_odir,
    dir_odir: both or neither), and the training options of the loss-trained methods (lr,
    sctl_norm, focal_gradient, pts_init, ...) as keywords or in a train={...} dict. An option
    left out (None) takes the method's default; an option that does not apply to the method is
    refused with ValueError, as on the command line. bins (M, also the objective's), the
    conventions options of `evaluate`, backend (cpu | cuda | auto). probs=True fits on
    probabilities (z = log p).
    """
    given = {
        "objective": objective,
        "grid": grid,
        "calib_bins": calib_bins,
        "iterations": iterations,
        "accuracy_constraint": accuracy_constraint,
        "cts_search": cts_search,
        "odir_lambda": odir_lambda,
        "odir_mu": odir_mu,
    }
    given.update(train or {})
    given.update(options)
    args = _core._fit_args()
    args.method = method
    args.options = {str(k): _option_text(str(k), v) for k, v in given.items() if v is not None}
    args.bins = _integer(bins, "bins")
    args.conventions = _conventions(conventions, binning, classwise_binning, adaptive, classwise_reduction, brier,
                                    nll_clip)
    args.backend = backend
    name = "val_probs" if probs else "val_logits"
    values, _ = _scores(val_logits, name, bool(probs))
    y = _array(val_labels, "val_labels")
    impl = _call_with_arrays(lambda v, t: _core.fit(v, t, bool(probs), args, name, "val_labels"), values, y)
    return Calibrator(impl)


def _candidates(values: Union[str, Sequence[float], np.ndarray], option: str) -> list:
    if isinstance(values, str):
        return _core.parse_grid(values, option)
    out = np.asarray(values, dtype=np.float64)
    if out.ndim != 1:
        raise ValueError(f"{option}: expected a 1-D sequence of candidates, got shape {list(out.shape)}")
    if out.size == 0:
        raise ValueError(f"{option}: no candidates")
    return out.tolist()


def _inverse_grid(values: Union[str, Sequence[float], np.ndarray]) -> Tuple[float, float, int]:
    """(start, step, count) of an arithmetic inverse-temperature grid."""
    if isinstance(values, str):
        return _core.parse_arithmetic_grid(values, "inverse_temperatures")
    b = np.asarray(values, dtype=np.float64)
    if b.ndim != 1:
        raise ValueError(f"inverse_temperatures: expected a 1-D sequence of candidates, got shape {list(b.shape)}")
    if b.size == 0:
        raise ValueError("inverse_temperatures: no candidates")
    if b.size == 1:
        return float(b[0]), 0.0, 1
    step = (b[-1] - b[0]) / (b.size - 1)
    expected = b[0] + np.arange(b.size) * step
    # linspace and arange grids differ from start + g * step by a few ulps; anything more is
    # not an arithmetic grid, which the multiply recurrence needs.
    tolerance = 1e-9 * max(1.0, float(np.max(np.abs(b))))
    bad = np.flatnonzero(np.abs(b - expected) > tolerance)
    if bad.size:
        g = int(bad[0])
        raise ValueError(
            f"inverse_temperatures: not an arithmetic grid (candidate {g} is {float(b[g])!r}, start + {g} * step "
            f"is {float(expected[g])!r}); pass temperatures= for arbitrary candidates"
        )
    return float(b[0]), float(step), int(b.size)


def _sweep(family, logits, labels, candidates, grid, bins, binning, backend, adaece, probs, per_bin) -> dict:
    args = _core._sweep_args()
    args.family = family
    if candidates is not None:
        args.candidates = candidates
    if grid is not None:
        args.grid = grid
    args.bins = _integer(bins, "bins")
    args.binning = binning
    args.backend = backend
    args.adaece = bool(adaece)
    args.per_bin = bool(per_bin)
    name = "probs" if probs else "logits"
    values, _ = _scores(logits, name, bool(probs))
    y = _array(labels, "labels")
    return _call_with_arrays(lambda v, t: _core.sweep(v, t, bool(probs), args, name), values, y)


def sweep_temperatures(
    logits: Any,
    labels: Any,
    temperatures: Union[None, str, Sequence[float], np.ndarray] = None,
    inverse_temperatures: Union[None, str, Sequence[float], np.ndarray] = None,
    bins: int = 15,
    backend: str = "cpu",
    adaece: bool = True,
    binning: str = "right-closed",
    probs: bool = False,
    per_bin: bool = False,
) -> dict:
    """Evaluates many temperatures in one pass of the batch sweep engine (docs/sweeps.md).

    Exactly one of temperatures (any T > 0: a sequence or "start:stop:step" / "v1,v2,...") and
    inverse_temperatures (an arithmetic grid of b = 1/T > 0, served by the multiply recurrence:
    a sequence such as numpy.linspace, or "start:stop:step"). Returns a dict of NumPy arrays,
    one entry per candidate in the order given: "candidates" (T, or b for
    inverse_temperatures), "ece", "mce", "adaece" (NaN with adaece=False), "nll", "brier",
    "accuracy", with per_bin=True also "bin_count", "bin_sum_confidence", "bin_sum_correct"
    [G, M]; and "backend". Sweeps read float32 logits: C-contiguous float32 logits and int32
    labels are read in place, anything else is converted first.
    """
    if (temperatures is None) == (inverse_temperatures is None):
        raise ValueError("give exactly one of temperatures and inverse_temperatures")
    if temperatures is not None:
        return _sweep("temperature", logits, labels, _candidates(temperatures, "temperatures"), None, bins, binning,
                      backend, adaece, probs, per_bin)
    return _sweep("inverse-temperature", logits, labels, None, _inverse_grid(inverse_temperatures), bins, binning,
                  backend, adaece, probs, per_bin)


def sweep_weights(
    logits: Any,
    labels: Any,
    weights: Union[str, Sequence[float], np.ndarray],
    bins: int = 15,
    backend: str = "cpu",
    adaece: bool = True,
    binning: str = "right-closed",
    probs: bool = False,
    per_bin: bool = False,
) -> dict:
    """Weight scaling a softmax(z) + (1 - a)/K for every weight a in [0, 1] in one pass; the
    prediction stays the uncalibrated argmax. Returns the dict of `sweep_temperatures`."""
    return _sweep("weight", logits, labels, _candidates(weights, "weights"), None, bins, binning, backend, adaece,
                  probs, per_bin)


def sweep(logits: Any, labels: Any, family: str = "temperature", candidates: Any = None, **options) -> dict:
    """One batch sweep of a candidate family (docs/sweeps.md): family "temperature" (candidates =
    temperatures), "inverse-temperature" (candidates = an arithmetic grid of 1/T) or "weight"
    (candidates = weights in [0, 1]); the other keyword options are those of
    `sweep_temperatures`. Returns its dict of per-candidate NumPy arrays."""
    if family == "temperature":
        return sweep_temperatures(logits, labels, temperatures=candidates, **options)
    if family == "inverse-temperature":
        return sweep_temperatures(logits, labels, inverse_temperatures=candidates, **options)
    if family == "weight":
        return sweep_weights(logits, labels, candidates, **options)
    raise ValueError(f"sweep: family '{family}' is not one of temperature, inverse-temperature, weight "
                     "(class- and bin-temperature sweeps are CLI-only: calibench sweep-candidates)")


def top_label_metrics(
    logits: Any,
    labels: Any,
    bins: int = 15,
    binning: str = "right-closed",
    adaece: bool = False,
    backend: str = "cpu",
    probs: bool = False,
) -> dict:
    """The top-label metrics (ece, mce, adaece, nll, brier, accuracy) of the uncalibrated
    logits alone, through the sweep engine at T = 1: much cheaper than `evaluate`, which also
    computes the classwise and ranking metrics. Reads float32 (float64 logits are rounded
    first), so values can differ from `evaluate`'s in the last digits; adaece is NaN unless
    asked for."""
    r = _sweep("temperature", logits, labels, [1.0], None, bins, binning, backend, adaece, probs, False)
    return {key: float(r[key][0]) for key in ("ece", "mce", "adaece", "nll", "brier", "accuracy")}


def read_dump(path: str, split: str = "test") -> Tuple[np.ndarray, np.ndarray, bool]:
    """One split of an HDF5 logit dump, validated as `calibench eval` reads it: (values [N, K]
    float64, labels [N] int32, is_probs)."""
    values, labels, is_probs, _value_type = _core.read_dump(str(path), split)
    return values, labels, is_probs


def dump_info(path: str) -> dict:
    """Root attributes and split shapes of a dump (as `calibench info`, without metrics)."""
    return _core.dump_info(str(path))


def write_dump(
    path: str,
    splits: Mapping[str, Tuple[Any, Any]],
    probs: bool = False,
    attributes: Optional[Mapping[str, Any]] = None,
) -> None:
    """Writes an HDF5 logit dump (docs/metrics.md, "Inputs") atomically.

    splits: {name: (values [N, K], labels [N])}, with at least "val" and "test". Logits are
    stored as float32 (float64 input is rounded), probabilities (probs=True) as float64,
    labels as int32; all are validated as a reader would. attributes: extra root attributes
    (strings, or numbers stored as float64); "dataset" and "model" default to "unnamed".
    """
    strings = {"dataset": "unnamed", "model": "unnamed", "source": f"calibench {__version__} Python write_dump"}
    numbers_: dict = {}
    for key, value in (attributes or {}).items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            strings[str(key)] = str(value)
        else:
            numbers_[str(key)] = float(value)
            strings.pop(str(key), None)
    entries = []
    for name, pair in splits.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"splits['{name}']: expected a (values, labels) pair")
        kind = "probs" if probs else "logits"
        values = _array(pair[0], f"splits['{name}'] {kind}")
        entries.append((str(name), values, _array(pair[1], f"splits['{name}'] labels")))

    def call(*arrays):
        triples = [(entries[i][0], arrays[2 * i], arrays[2 * i + 1]) for i in range(len(entries))]
        return _core.write_dump(str(path), triples, bool(probs), strings, numbers_)

    flat = [a for _, v, y in entries for a in (v, y)]
    _call_with_arrays(call, *flat)


def set_progress(mode: str = "lines", interval: float = 5.0, callback=None) -> None:
    """Progress with an ETA for the long calls (fit cycles, CV folds, L-BFGS iterations,
    sweeps): "lines" (a line at most every `interval` seconds), "live" (one line rewritten in
    place, for a terminal) or "off" (the default). Without `callback` the engine writes the lines
    to file descriptor 2 itself (not through sys.stderr: a notebook shows them in its server's
    log); with `callback`, each line (a str such as "cts_greedy: 140/500 class steps, cycle 2 of
    at most 5, 3.1 s, ETA at most 8 s") is passed to it instead, on the calling thread, e.g.
    `calibench.set_progress(callback=print)` or a tqdm bar's `set_description_str`."""
    _core.set_progress(str(mode), float(interval), callback)
    if callback is not None:  # drop the engine's reference before the interpreter goes away
        import atexit

        atexit.register(_core.set_progress, "off", 5.0, None)


def device_info() -> dict:
    """Whether the CUDA backend is built into this module and which device answers."""
    return _core.device_info()


from .plots import plot_reliability, plot_data  # noqa: E402
