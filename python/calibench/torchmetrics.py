"""torchmetrics.Metric classes for every metric of `calibench.evaluate` (docs/python.md, "torchmetrics").

    from calibench.torchmetrics import CalibenchMetrics, ExpectedCalibrationError
    ece = ExpectedCalibrationError(bins=15, conventions="torchmetrics")
    every = CalibenchMetrics(["ece", "nll", "brier"])       # one state, one engine call, a dict
    for logits, labels in loader:
        ece.update(logits, labels)
        every.update(logits, labels)
    ece.compute()                                           # float64 scalar tensor
    every.compute()                                         # {"ece": tensor, "nll": tensor, "brier": tensor}

The states are the raw logits (or probabilities) and labels, gathered across processes by
torchmetrics' own machinery (list states, dist_reduce_fx="cat"); compute() makes one call of
calibench.evaluate on all of them. Importing this module imports torch and torchmetrics;
`import calibench` alone never does.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple, Union

try:
    import torch
    from torchmetrics import Metric
    from torchmetrics.utilities.data import dim_zero_cat
    from torchmetrics.utilities.distributed import gather_all_tensors
except ImportError as e:  # name the requirement, not only the missing module
    raise ImportError(f"calibench.torchmetrics needs torch and torchmetrics >= 1.0 ({e})") from e

import calibench

# One row per metric key of `calibench.evaluate`, in the order of docs/metrics.md and `eval --format json`:
# (key, class name, higher_is_better). n and k are counts, not metrics, and have no class.
METRICS: Tuple[Tuple[str, str, Optional[bool]], ...] = (
    ("accuracy", "Accuracy", True),
    ("ece", "ExpectedCalibrationError", False),
    ("mce", "MaximumCalibrationError", False),
    ("adaece", "AdaptiveCalibrationError", False),
    ("sce", "StaticCalibrationError", False),
    ("ace", "ClasswiseAdaptiveCalibrationError", False),
    ("nll", "NegativeLogLikelihood", False),
    ("brier", "BrierScore", False),
    ("auroc", "AUROC", True),
    ("precision", "Precision", True),
    ("recall", "Recall", True),
    ("f1", "F1Score", True),
    ("r_auc", "RetentionAUC", True),
    ("rmsce", "RMSCalibrationError", False),
    ("rmsce_debiased", "DebiasedRMSCalibrationError", False),
    ("ace_unweighted", "AverageCalibrationError", False),
    ("smece", "SmoothCalibrationError", False),
    ("kde_ece", "KDECalibrationError", False),
    ("ks_error", "KSCalibrationError", False),
    ("ece_sweep", "SweepCalibrationError", False),
    ("aurc", "AURC", False),
    ("eaurc", "ExcessAURC", False),
    ("brier_reliability", "BrierReliability", False),
    ("brier_resolution", "BrierResolution", True),
    ("brier_uncertainty", "BrierUncertainty", None),  # a property of the labels, neither better nor worse
)

#: The metric keys the classes accept, in `calibench.evaluate`'s order.
METRIC_KEYS: Tuple[str, ...] = tuple(key for key, _, _ in METRICS)

# Codes agreed between processes before the gather (the largest wins): 0 = no samples.
_DTYPE_CODES = {torch.float32: 1, torch.float64: 2}
_CODE_DTYPES = {code: dtype for dtype, code in _DTYPE_CODES.items()}
_NO_CLASSES = -(2**62)


def _keys(metrics: Union[None, str, Sequence[str]], owner: str) -> Tuple[str, ...]:
    """The requested metric keys, checked here so that a typo fails at construction."""
    if metrics is None:
        return METRIC_KEYS
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise ValueError(f"{owner}: metrics: an empty list selects nothing (None selects every metric)")
    for name in names:
        if name not in METRIC_KEYS:
            raise ValueError(f"{owner}: unknown metric {name!r} (metrics are: {', '.join(METRIC_KEYS)})")
    if len(set(names)) != len(names):
        raise ValueError(f"{owner}: metrics: {names} names a metric twice")
    return tuple(names)


def _check_options(options: Dict[str, Any]) -> None:
    """Runs the engine's own checks of the conventions options (the same messages as
    `calibench eval`) on two samples, so that a bad preset or bin count fails at construction."""
    if options["probs"]:
        sample = [[0.75, 0.25], [0.25, 0.75]]
    else:
        sample = [[1.0, 0.0], [0.0, 1.0]]
    calibench.evaluate(sample, [0, 1], metrics=["accuracy"], **options)


class _CalibenchBase(Metric):
    """Keeps every update's values [N, K] and labels [N]; compute() evaluates their concatenation."""

    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        keys: Tuple[str, ...],
        bins: int = 15,
        probs: bool = False,
        conventions: str = "calibench",
        binning: Optional[str] = None,
        classwise_binning: Optional[str] = None,
        adaptive: Optional[str] = None,
        classwise_reduction: Optional[str] = None,
        brier: Optional[str] = None,
        nll_clip: Optional[float] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metric_keys = keys
        self.evaluate_options = {
            "bins": bins,
            "probs": bool(probs),
            "conventions": conventions,
            "binning": binning,
            "classwise_binning": classwise_binning,
            "adaptive": adaptive,
            "classwise_reduction": classwise_reduction,
            "brier": brier,
            "nll_clip": nll_clip,
        }
        _check_options(self.evaluate_options)
        self.add_state("values", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def _owner(self) -> str:
        return type(self).__name__

    def _num_classes(self) -> Optional[int]:
        """K of the values held so far (None before the first update)."""
        held = self.values if isinstance(self.values, list) else [self.values]
        return int(held[0].shape[1]) if held and held[0].ndim == 2 else None

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Keeps a copy of preds ([N, K] logits, or probabilities with probs=True) and target
        ([N] or [N, 1] integer labels) on their device. float16 and bfloat16 values are kept as
        float32 (exactly), float32 and float64 as they are; labels as int64."""
        owner = self._owner()
        preds = torch.as_tensor(preds)
        target = torch.as_tensor(target)
        if preds.ndim != 2:
            raise ValueError(f"{owner}: preds: expected rank 2 [N, K], found shape {list(preds.shape)}")
        if not preds.is_floating_point():
            raise ValueError(f"{owner}: preds: expected floating-point logits or probabilities, found {preds.dtype}")
        if target.ndim == 2 and target.shape[1] == 1:
            target = target.reshape(-1)
        if target.ndim != 1 or target.shape[0] != preds.shape[0]:
            raise ValueError(f"{owner}: target: expected [N] labels with N = {preds.shape[0]} (the rows of preds), "
                             f"found shape {list(target.shape)}")
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(f"{owner}: target: expected integer labels, found {target.dtype}")
        k = self._num_classes()
        if k is not None and preds.shape[1] != k:
            raise ValueError(f"{owner}: preds: {preds.shape[1]} classes, but the earlier updates had {k}")
        dtype = preds.dtype if preds.dtype in _DTYPE_CODES else torch.float32
        # Copies: the caller may reuse its buffers, and a view would keep a larger base alive.
        self.values.append(preds.detach().to(dtype=dtype, memory_format=torch.contiguous_format, copy=True))
        self.labels.append(target.detach().to(dtype=torch.int64, copy=True))

    def _sync_dist(self, dist_sync_fn: Any = gather_all_tensors, process_group: Optional[Any] = None) -> None:
        self._agree_on_layout(process_group or self.process_group)
        super()._sync_dist(dist_sync_fn, process_group)

    def _agree_on_layout(self, group: Optional[Any]) -> None:
        """Before torchmetrics gathers the states: the processes agree on the values' dtype (the
        widest one held anywhere) and K, and one that holds no samples contributes empty [0, K]
        tensors of that dtype. torchmetrics' own placeholder for an empty list, a 1-D tensor of
        the metric's dtype, could not be gathered with the [N, K] values or int64 labels of the
        other processes."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return  # a custom dist_sync_fn without torch.distributed: torchmetrics' own path
        k = self._num_classes()
        code = max((_DTYPE_CODES[v.dtype] for v in self.values), default=0)
        device = self.values[0].device if self.values else self.device
        info = torch.tensor([code, k or 0, -k if k else _NO_CLASSES], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(info, op=torch.distributed.ReduceOp.MAX, group=group)
        code, k_max, k_min = int(info[0]), int(info[1]), -int(info[2])
        if k_max == 0:
            return  # no process has seen an update: compute() reports it
        if k_min != k_max:
            raise ValueError(f"{self._owner()}: the processes hold values with different class counts "
                             f"(from {k_min} to {k_max})")
        dtype = _CODE_DTYPES.get(code, torch.float32)
        if self.values:
            self.values = [torch.cat([v.to(dtype) for v in self.values])]
            self.labels = [torch.cat(list(self.labels))]
        else:
            self.values = [torch.empty(0, k_max, dtype=dtype, device=device)]
            self.labels = [torch.empty(0, dtype=torch.int64, device=device)]

    def _evaluate(self) -> Dict[str, torch.Tensor]:
        """One calibench.evaluate call on all values held (after the gather: every process's)."""
        held = self.values if isinstance(self.values, list) else [self.values]
        if sum(int(v.shape[0]) for v in held) == 0:
            raise ValueError(f"{self._owner()}: compute() found no samples: update() was not called since "
                             "construction or reset() (on any process)")
        widths = sorted({int(v.shape[1]) for v in held if v.ndim == 2})
        if len(widths) > 1:
            raise ValueError(f"{self._owner()}: the updates hold values with different class counts {widths}")
        values = dim_zero_cat(self.values).cpu()
        labels = dim_zero_cat(self.labels).cpu()
        result = calibench.evaluate(values, labels, metrics=list(self.metric_keys), **self.evaluate_options)
        return {
            key: torch.tensor(math.nan if result[key] is None else float(result[key]), dtype=torch.float64,
                              device=self.device)
            for key in self.metric_keys
        }


class CalibenchMetric(_CalibenchBase):
    """One metric of `calibench.evaluate` as a torchmetrics Metric: compute() returns
    `calibench.evaluate(all values, all labels, metrics=[metric], ...)[metric]` as a float64
    scalar tensor (NaN where evaluate gives None), exactly.

    metric: a key of METRIC_KEYS (accuracy, ece, mce, adaece, sce, ace, nll, brier, auroc,
    precision, recall, f1, r_auc, rmsce, rmsce_debiased, ace_unweighted, smece, kde_ece).
    bins, probs, conventions (a preset of calibench.presets), binning, classwise_binning,
    adaptive, classwise_reduction, brier, nll_clip: as in calibench.evaluate, checked by the
    engine at construction. Other keywords go to torchmetrics.Metric (compute_on_cpu,
    sync_on_compute, process_group, dist_sync_on_step, ...).

    update(preds, target): preds [N, K] logits (or probabilities with probs=True; unlike
    torchmetrics, values in [0, 1] are not taken as probabilities by themselves), target [N]
    or [N, 1] integer labels. Values are checked (finite, labels in [0, K), probability rows)
    by calibench at compute(), whose ValueError names the row index in the concatenation of
    the updates (after a gather: rank 0's rows, then rank 1's, ...).

    Memory: the states are every value and label (N K values in their dtype, float16 and
    bfloat16 kept as float32, plus 8 bytes per label), on the device they came on until
    compute(), which concatenates them (a second copy) and moves them to the CPU;
    `compute_on_cpu=True` moves each update to the CPU instead. torchmetrics' own
    CalibrationError keeps two float32 numbers per sample. For several metrics of the same
    data use CalibenchMetrics: one copy of the values and one engine call.

    Distributed: every process gathers every process's states (all_gather) and computes the
    same value, equal to evaluate on rank 0's samples, then rank 1's, ... in update order.
    """

    def __init__(self, metric: str = "ece", bins: int = 15, probs: bool = False, conventions: str = "calibench",
                 **kwargs: Any) -> None:
        if not isinstance(metric, str):
            raise ValueError(f"{type(self).__name__}: metric: expected one metric key, got {metric!r} "
                             "(CalibenchMetrics computes several)")
        super().__init__(_keys([metric], type(self).__name__), bins=bins, probs=probs, conventions=conventions,
                         **kwargs)
        self.metric = metric

    def compute(self) -> torch.Tensor:
        return self._evaluate()[self.metric]


class CalibenchMetrics(_CalibenchBase):
    """Several metrics of `calibench.evaluate` from one state: compute() returns
    {key: float64 scalar tensor} for the keys asked for (None: all of METRIC_KEYS), each
    exactly `calibench.evaluate(...)[key]` (NaN for None), from a single engine call. The
    arguments, inputs, memory and distributed behaviour are those of CalibenchMetric; the
    values are stored once whatever the number of metrics."""

    def __init__(self, metrics: Union[None, str, Sequence[str]] = None, bins: int = 15, probs: bool = False,
                 conventions: str = "calibench", **kwargs: Any) -> None:
        super().__init__(_keys(metrics, type(self).__name__), bins=bins, probs=probs, conventions=conventions,
                         **kwargs)

    def compute(self) -> Dict[str, torch.Tensor]:
        return self._evaluate()


def _named_class(key: str, name: str) -> type:
    def __init__(self, bins: int = 15, probs: bool = False, conventions: str = "calibench", **kwargs: Any) -> None:
        CalibenchMetric.__init__(self, key, bins=bins, probs=probs, conventions=conventions, **kwargs)

    doc = (f"calibench's `{key}` (docs/metrics.md) as a torchmetrics Metric: CalibenchMetric(metric={key!r}, ...). "
           "compute() returns a float64 scalar tensor equal to calibench.evaluate(...)['" + key + "'].")
    better = {k: b for k, _, b in METRICS}[key]
    return type(name, (CalibenchMetric,), {"__init__": __init__, "__doc__": doc, "__module__": __name__,
                                           "__qualname__": name, "higher_is_better": better})


for _key, _name, _ in METRICS:
    globals()[_name] = _named_class(_key, _name)
del _key, _name

__all__ = ["CalibenchMetric", "CalibenchMetrics", "METRIC_KEYS", "METRICS"] + [name for _, name, _ in METRICS]
