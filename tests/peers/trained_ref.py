"""Float64 PyTorch reference of calibench's loss-trained post-hoc calibrators (`fit --method
BASE+LOSS`), written from the authors' code and independent of calibench:

  SeungjinJung/SCTL (class-wise loss scaling, Jung et al. ICML 2023): models/scaler.py
  (TS, ETS, CTS, PTS), models/lossfunction.py (CE, LS, FL, CL = +sctl), models/optimizer.py
  (one torch L-BFGS .step per optimizer, no line search; the three-optimizer schedule for LS and
  FL; Adam for PTS), models/__init__.py (the training loops; ETS trains t, then w);
  zhang64-llnl/Mix-n-Match-Calibration (`ets`: t by TS, then the mixture weights on the
  simplex by SLSQP); tochris/pts-uncertainty (`pts`: |MLP(top-k sorted clipped logits)| as the
  temperature, Keras MSE, Adam with weight decay).

Everything runs in torch.float64 on the CPU (the authors' tensors are float32 on CUDA).

Calibrators (z: [N, K] logits; each returns log-probabilities):
  ts        log_softmax(z / t), t init 1
  cts_nll   log_softmax(z / T), T in R^K init 1
  ets_sctl  log_softmax(w0 z / t + w1 z + w2 / K), w init (1, 0, 0); phase t (w fixed), then
            phase w (t fixed), each phase its own list of optimizers
  pts_sctl  log_softmax(z / m(x)), x = top-s of z sorted descending (s = min(10, K)), detached;
            m: Linear(s,2)+ReLU, 3 x (Linear(2,2)+ReLU), Linear(2,1)
  ets       log(w0 softmax(z / t) + w1 softmax(z) + w2 / K); t by the ts training with the same
            loss, then w on the simplex by scipy SLSQP from (1, 0, 0)
  pts       c = clip(z, -100, 100); log_softmax(c / clip(|m(x)|, 1e-12, 1e12)), x = top-s of c;
            m: `layers` x (Linear + ReLU) of `nodes` units, Linear(nodes, 1)

Losses of l = log-probabilities (means over samples): ce, ls (label smoothing 0.05), fl (focal,
gamma 3; `full` or `detached` gradient), lsplus (0.5 CE + 0.5 KL(v^y || p)), sctl (class-wise
scaled CE), mse (Keras MSE of p against the one-hot label; pts's default).

Training: torch.optim.LBFGS(lr, max_iter), one .step(closure) per optimizer, no line search
(ts, cts_nll, ets_sctl, ets's t); Adam(lr, weight_decay) full-batch steps (pts_sctl, pts). Default
stages: (0.02, 1000); for ls and fl the authors' three fresh optimizers (0.005, 200), (0.003, 400),
(0.001, 400); ets_sctl runs its stages for t, then again for w. The +sctl loss counts its
evaluations over all phases: evaluation 0 stores L0 and weighs with (1, 1.5), evaluation 1 fits
(a, b) by SciPy SLSQP on (L0, L1) (or takes `sctl_ab`) and freezes it.

Choices where the authors' code does not decide (see also tests/e2e/test_trained_parity.py):
  - classes absent from /val are left out of +sctl (the authors' code gets NaN); the SLSQP box
    uses the number of classes present, ln(K_present)/2;
  - ets's weight phase minimises the loss *value* by SLSQP with the exact gradient of that value
    (for +sctl the class weights recomputed from the same evaluation's losses, so their
    dependence on w is differentiated; for +fl the full gradient), from (1, 0, 0), ftol 1e-14;
  - PTS for K < 10 uses s = K inputs (the authors' Linear(10, 2) needs K >= 10);
  - pts's weight decay is torch Adam's L2 term on every parameter (Keras' l2 regulariser puts
    2 wd w on the kernels only).

`with precision(torch.float32):` runs the reference in the authors' precision; it then
reproduces their published TS test ECE on densenet40_c10_LT (6.15 % vs 6.16 % CE, 3.23 % vs
3.22 % CL GN); float64 gives 6.10 % and 3.13 % (float32 L-BFGS stops earlier on
tolerance_change 1e-9).

Import it (fit(...) returns a dict like calibench's JSON) or run it:
  python trained_ref.py DUMP --method ts+sctl [--sctl-ab A,B] [--stages 0.02:1000] ...
and it prints JSON with `params`, `val`, `test` (ece 15 equal-width bins (lo, hi], accuracy,
nll).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys

import h5py
import numpy as np
import torch
from scipy import optimize

DT = torch.float64
BASES = ("ts", "cts_nll", "ets_sctl", "pts_sctl", "ets", "pts")
LOSSES = ("ce", "ls", "fl", "lsplus", "sctl", "mse")
LBFGS_BASES = ("ts", "cts_nll", "ets_sctl", "ets")
ADAM_BASES = ("pts_sctl", "pts")
SCHEDULE = ((0.005, 200), (0.003, 400), (0.001, 400))  # the authors' lbfgs_schedule / adam_schedule
LABEL_SMOOTHING = 0.05
FOCAL_GAMMA = 3
PTS_CLIP = 100.0


@contextlib.contextmanager
def precision(dtype):
    """Run the reference in another dtype (torch.float32: the authors' precision)."""
    global DT
    old, DT = DT, dtype
    try:
        yield
    finally:
        DT = old


# ------------------------------------------------------------------------------ input, metrics


def load_dump(path):
    """((z_val, y_val), (z_test, y_test)) as float64 / int64 numpy arrays (logit dumps only)."""
    with h5py.File(path, "r") as f:
        out = []
        for split in ("val", "test"):
            if f"{split}/logits" not in f:
                raise ValueError(f"{path}: /{split}/logits missing (probability dumps are not supported)")
            z = np.asarray(f[f"{split}/logits"], dtype=np.float64)
            y = np.asarray(f[f"{split}/labels"]).reshape(-1).astype(np.int64)
            out.append((z, y))
    return tuple(out)


def metrics(logp, y, bins=15):
    """ece (equal-width bins (lo, hi], confidence = max p, prediction = first argmax), accuracy,
    nll = mean -log p_y, from float64 log-probabilities [N, K]."""
    logp = np.asarray(logp, dtype=np.float64)
    y = np.asarray(y)
    p = np.exp(logp)
    pred = np.argmax(p, axis=1)
    conf = p[np.arange(len(y)), pred]
    correct = (pred == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    n = len(y)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        m = int(sel.sum())
        if m:
            ece += abs(conf[sel].mean() - correct[sel].mean()) * m / n
    return {"ece": float(ece), "accuracy": float(correct.mean()),
            "nll": float(-logp[np.arange(n), y].mean())}


def lsplus_prior_true(z, y, k, perfect="uniform"):
    """c_k = accuracy of class k of the uncalibrated model (first argmax); accuracy 1 -> 1/K
    (uniform), 0.5 (half) or 1 (keep); absent classes 1/K."""
    pred = np.argmax(z, axis=1)
    count = np.bincount(y, minlength=k)
    correct = np.bincount(y[pred == y], minlength=k)
    c = np.where(count > 0, correct / np.maximum(count, 1), 1.0 / k)
    c[(count > 0) & (correct == count)] = {"uniform": 1.0 / k, "half": 0.5, "keep": 1.0}[perfect]
    return c


# ------------------------------------------------------------------------------ SCTL weights


def sctl_normalise(loss, norm):
    """nd (L - mean)/std (unbiased), mm (L - min)/(max - min), cm (L - mean)/(max - min); a zero
    denominator gives zeros."""
    loss = np.asarray(loss, dtype=np.float64)
    if norm == "nd":
        centre, scale = loss.mean(), loss.std(ddof=1)
    elif norm == "mm":
        centre, scale = loss.min(), loss.max() - loss.min()
    elif norm == "cm":
        centre, scale = loss.mean(), loss.max() - loss.min()
    else:
        raise ValueError(f"unknown sctl norm {norm!r}")
    if not scale > 0:
        return np.zeros_like(loss)
    return (loss - centre) / scale


def sctl_w(normalised, a, b):
    with np.errstate(over="ignore"):
        return b / (1.0 + np.exp(-np.asarray(normalised) / a)) - b / 2.0


def sctl_objective(l0, l1, n1, a, b):
    l0, l1 = np.asarray(l0), np.asarray(l1)
    return float(np.sqrt(((l0 - sctl_w(n1, a, b) * (l1 - l0) - l1.mean()) ** 2).sum()))


def sctl_box(k):
    return ((0.1, math.log(k) / 2.0), (1.5, 2.0))


def sctl_slsqp(l0, l1, norm):
    """The authors' fit: scipy SLSQP from (1, 1.5) in the box, finite-difference gradient."""
    n1 = sctl_normalise(l1, norm)
    res = optimize.minimize(lambda x: sctl_objective(l0, l1, n1, x[0], x[1]), (1.0, 1.5), method="SLSQP",
                            bounds=sctl_box(len(l0)), options={"disp": False})
    a, b = float(res.x[0]), float(res.x[1])
    return a, b, sctl_objective(l0, l1, n1, a, b)


# ------------------------------------------------------------------------------ losses


class Loss:
    """loss(logp, y) -> scalar tensor. Counts its evaluations (the SCTL schedule of (a, b) keys
    on them): `count=False` evaluates without advancing the counter (final loss, reporting)."""

    def __init__(self, name, z_val, y_val, k, focal_gradient="full", sctl_norm="nd", sctl_ab=None,
                 lsplus_perfect="uniform"):
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}")
        self.name, self.k = name, k
        self.focal_gradient = focal_gradient
        self.evaluations = 0
        y = np.asarray(y_val)
        if name == "ls":
            self.smooth = (1.0 - LABEL_SMOOTHING) * torch.nn.functional.one_hot(torch.as_tensor(y), k).to(DT) \
                + LABEL_SMOOTHING / k
        if name == "lsplus":
            c = lsplus_prior_true(np.asarray(z_val), y, k, lsplus_perfect)
            v = np.repeat(((1.0 - c) / (k - 1))[:, None], k, axis=1)
            v[np.arange(k), np.arange(k)] = c
            self.priors = c
            self.v = torch.as_tensor(v[y], dtype=DT)  # [N, K]: v^{y_n}
            with np.errstate(divide="ignore"):
                self.v_log_v = torch.as_tensor(np.where(v[y] > 0, v[y] * np.log(np.where(v[y] > 0, v[y], 1.0)), 0.0),
                                               dtype=DT)
        if name == "sctl":
            counts = np.bincount(y, minlength=k)
            self.classes = np.flatnonzero(counts > 0)
            self.counts = torch.as_tensor(counts[self.classes], dtype=DT)
            self.norm = sctl_norm
            self.ab_given = sctl_ab
            self.alpha, self.beta = 1.0, 1.5
            self.l0 = self.l1 = None
            self.fit = None

    # per-class mean CE over the present classes (order of self.classes)
    def class_losses(self, logp, y):
        nll = -logp.gather(1, y.view(-1, 1)).view(-1)
        sums = torch.zeros(self.k, dtype=DT).index_add(0, y, nll)
        return sums[torch.as_tensor(self.classes)] / self.counts

    def weights(self, losses_np):
        return sctl_w(sctl_normalise(losses_np, self.norm), self.alpha, self.beta)

    def __call__(self, logp, y, count=True, detach_weights=True, focal_gradient=None, frozen_factor=None):
        name = self.name
        if name == "ce":
            return -logp.gather(1, y.view(-1, 1)).mean()
        if name == "ls":
            return -(self.smooth * logp).sum(dim=1).mean()
        if name == "fl":
            ly = logp.gather(1, y.view(-1, 1)).view(-1)
            pt = ly.exp()
            if (focal_gradient or self.focal_gradient) == "detached":
                pt = pt.detach()
            return (-(1.0 - pt) ** FOCAL_GAMMA * ly).mean()
        if name == "lsplus":
            ce = -logp.gather(1, y.view(-1, 1)).mean()
            kl = (self.v_log_v - self.v * logp).sum(dim=1).mean()
            return 0.5 * ce + 0.5 * kl
        if name == "mse":
            onehot = torch.nn.functional.one_hot(y, self.k).to(DT)
            return ((logp.exp() - onehot) ** 2).mean()
        # sctl
        losses = self.class_losses(logp, y)
        loss_np = losses.detach().numpy().copy()
        if count:
            if self.evaluations == 0:
                self.l0 = loss_np
            elif self.evaluations == 1:
                self.l1 = loss_np
                a, b, obj = sctl_slsqp(self.l0, self.l1, self.norm)
                self.fit = {"slsqp_alpha": a, "slsqp_beta": b, "slsqp_objective": obj}
                if self.ab_given is not None:
                    a, b = self.ab_given
                self.alpha, self.beta = float(a), float(b)
                self.fit["objective"] = sctl_objective(self.l0, self.l1, sctl_normalise(self.l1, self.norm), a, b)
            self.evaluations += 1
        if frozen_factor is not None:  # ets's SLSQP phase: 1 + w_i fixed at the phase's start
            factor = frozen_factor
        elif detach_weights:
            factor = torch.as_tensor(1.0 + self.weights(loss_np), dtype=DT)
        else:  # the weights as a function of the losses (ets's SLSQP minimises this value)
            centre_scale = {"nd": (losses.mean(), losses.std()),
                            "mm": (losses.min(), losses.max() - losses.min()),
                            "cm": (losses.mean(), losses.max() - losses.min())}[self.norm]
            scale = centre_scale[1]
            n = (losses - centre_scale[0]) / scale if float(scale.detach()) > 0 else torch.zeros_like(losses)
            factor = 1.0 + self.beta / (1.0 + torch.exp(-n / self.alpha)) - self.beta / 2.0
        return (factor * losses).sum()

    def count(self):
        if self.name != "sctl":
            self.evaluations += 1


# ------------------------------------------------------------------------------ calibrators


def mlp(layers):
    """nn.Sequential of float64 Linear layers from [{'weight': [[..]], 'bias': [..]}], ReLU after
    every layer but the last."""
    mods = []
    for i, layer in enumerate(layers):
        w = torch.as_tensor(np.asarray(layer["weight"], dtype=np.float64))
        b = torch.as_tensor(np.asarray(layer["bias"], dtype=np.float64))
        lin = torch.nn.Linear(w.shape[1], w.shape[0], dtype=DT)
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        mods.append(lin)
        if i + 1 < len(layers):
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def network_json(net):
    return {"layers": [{"weight": m.weight.detach().numpy().tolist(), "bias": m.bias.detach().numpy().tolist()}
                       for m in net if isinstance(m, torch.nn.Linear)]}


def pts_shape(base, k, layers=2, nodes=5):
    """(in, out) of each Linear layer."""
    s = min(10, k)
    if base == "pts_sctl":
        return [(s, 2), (2, 2), (2, 2), (2, 2), (2, 1)]
    dims = [s] + [nodes] * layers + [1]
    return list(zip(dims[:-1], dims[1:]))


def random_init(base, k, seed, layers=2, nodes=5, out_bias=1.0):
    """A seeded init in the --pts-init layout: torch's default Linear ranges U(-1/sqrt(in), 1/sqrt(in)),
    hidden biases moved to U(0.05, 0.5) (ReLU units alive on typical logits), the output layer's
    weights scaled by 0.05 and its bias out_bias, so that the first temperatures are near out_bias."""
    rng = np.random.default_rng(seed)
    shape = pts_shape(base, k, layers, nodes)
    out = []
    for i, (fan_in, fan_out) in enumerate(shape):
        bound = 1.0 / math.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=(fan_out, fan_in))
        b = rng.uniform(0.05, 0.5, size=fan_out)
        if i + 1 == len(shape):
            w *= 0.05
            b[:] = out_bias
        out.append({"weight": w.tolist(), "bias": b.tolist()})
    return {"layers": out}


def top_sorted(z, s):
    return torch.sort(z.detach(), dim=1, descending=True).values[:, :s]


class Model:
    """Parameters of one base method and its log-probability map."""

    def __init__(self, base, k, init=None, layers=2, nodes=5):
        self.base, self.k = base, k
        self.t = torch.nn.Parameter(torch.ones(1, dtype=DT))
        self.T = torch.nn.Parameter(torch.ones(k, dtype=DT))
        self.w = torch.nn.Parameter(torch.tensor([1.0, 0.0, 0.0], dtype=DT))
        self.net = None
        if base in ADAM_BASES:
            if init is None:
                raise ValueError(f"{base} needs an init (--pts-init)")
            shape = pts_shape(base, k, layers, nodes)
            got = [tuple(np.asarray(lay["weight"]).shape[::-1]) for lay in init["layers"]]
            if got != shape:
                raise ValueError(f"{base}: init layer shapes (in, out) {got} != {shape}")
            self.net = mlp(init["layers"])
            self.s = min(10, k)

    def logp(self, z):
        k = self.k
        if self.base == "ts":
            return torch.log_softmax(z / self.t, dim=1)
        if self.base == "cts_nll":
            return torch.log_softmax(z / self.T, dim=1)
        if self.base == "ets_sctl":
            return torch.log_softmax(self.w[0] * (z / self.t) + self.w[1] * z + self.w[2] * (1.0 / k), dim=1)
        if self.base == "ets":
            mix = self.w[0] * torch.softmax(z / self.t, dim=1) + self.w[1] * torch.softmax(z, dim=1) + self.w[2] / k
            return torch.log(mix)
        if self.base == "pts_sctl":
            return torch.log_softmax(z / self.net(top_sorted(z, self.s)), dim=1)
        if self.base == "pts":
            c = z.clamp(-PTS_CLIP, PTS_CLIP)
            temp = self.net(top_sorted(c, self.s)).abs().clamp(1e-12, 1e12)
            return torch.log_softmax(c / temp, dim=1)
        raise ValueError(self.base)

    def temperature_logp_ts(self, z):
        """ets's t phase: the ts map."""
        return torch.log_softmax(z / self.t, dim=1)

    def params_json(self):
        out = {}
        if self.base in ("ts", "ets", "ets_sctl"):
            out["temperature"] = float(self.t.item())
        if self.base in ("ets", "ets_sctl"):
            out["weights"] = [float(v) for v in self.w.detach()]
        if self.base == "cts_nll":
            out["temperatures"] = self.T.detach().numpy().tolist()
        if self.net is not None:
            out["network"] = network_json(self.net)
        return out


# ------------------------------------------------------------------------------ training


def run_lbfgs(params, closure_loss, stages, phase=None):
    """One fresh torch.optim.LBFGS(lr, max_iter) per stage, one .step(closure) each (defaults:
    no line search, tolerance_grad 1e-7, tolerance_change 1e-9, history 100)."""
    record = []
    for lr, iters in stages:
        opt = torch.optim.LBFGS(params, lr=lr, max_iter=int(iters))
        calls = [0]

        def closure():
            opt.zero_grad()
            loss = closure_loss()
            loss.backward()
            calls[0] += 1
            return loss

        if int(iters) > 0:
            opt.step(closure)
        st = opt.state[opt._params[0]]
        rec = {"optimizer": "lbfgs", "lr": lr, "iterations": int(iters), "evaluations": calls[0],
               "iterations_run": int(st.get("n_iter", 0))}
        if phase:
            rec["phase"] = phase
        record.append(rec)
    return record


def run_adam(params, closure_loss, stages, weight_decay=0.0):
    """One fresh torch.optim.Adam(lr, weight_decay) per stage, `steps` full-batch steps."""
    record = []
    for lr, steps in stages:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        for _ in range(int(steps)):
            opt.zero_grad()
            loss = closure_loss()
            loss.backward()
            opt.step()
        record.append({"optimizer": "adam", "lr": lr, "iterations": int(steps), "evaluations": int(steps),
                       "weight_decay": weight_decay})
    return record


def default_stages(base, loss, lr=None, iterations=None, schedule="auto"):
    sched = schedule == "on" or (schedule == "auto" and loss in ("ls", "fl"))
    if sched:
        return [(a, b if iterations is None else min(b, iterations)) for a, b in SCHEDULE]
    return [(0.02 if lr is None else lr, 1000 if iterations is None else iterations)]


def ets_weights_slsqp(model, loss, zv, yv):
    """Mix-n-Match: minimise the loss of log p over w on the simplex from (1, 0, 0), scipy SLSQP
    with the exact gradient of that value (for fl: the full gradient; for sctl: the class weights
    1 + w_i held at their values at (1, 0, 0) for the whole phase, as calibench does)."""
    frozen = None

    def f(wv):
        w = torch.tensor(wv, dtype=DT, requires_grad=True)
        mix = w[0] * comps[0] + w[1] * comps[1] + w[2] * comps[2]
        val = loss(torch.log(mix), yv, count=True, focal_gradient="full", frozen_factor=frozen)
        loss.count()
        (g,) = torch.autograd.grad(val, w)
        return float(val.detach()), g.numpy().copy()

    with torch.no_grad():
        t = model.t.detach()
        comps = (torch.softmax(zv / t, dim=1), torch.softmax(zv, dim=1), torch.full_like(zv, 1.0 / model.k))
        if loss.name == "sctl":
            start = loss.class_losses(torch.log(comps[0]), yv).numpy().copy()
            frozen = torch.as_tensor(1.0 + loss.weights(start), dtype=DT)
    res = optimize.minimize(f, np.array([1.0, 0.0, 0.0]), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * 3,
                            constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0,
                                          "jac": lambda w: np.ones(3)}],
                            options={"ftol": 1e-14, "maxiter": 10000})
    w = np.clip(res.x, 0.0, None)
    w /= w.sum()
    with torch.no_grad():
        model.w.copy_(torch.as_tensor(w))
    return {"optimizer": "slsqp", "phase": "w", "evaluations": int(res.nfev), "iterations_run": int(res.nit),
            "objective": f(w)[0], "status": int(res.status), "message": str(res.message)}


def parse_method(method):
    if "+" in method:
        base, loss = method.split("+", 1)
    else:
        base, loss = method, ("mse" if method == "pts" else "ce")
    if base not in BASES or loss not in LOSSES:
        raise ValueError(f"unknown method {method!r}")
    return base, loss


def fit(dump=None, method="ts+ce", data=None, stages=None, w_stages=None, lr=None, iterations=None,
        schedule="auto", focal_gradient="full", sctl_norm="nd", sctl_ab=None, pts_init=None, pts_layers=2,
        pts_nodes=5, weight_decay=None, lsplus_perfect="uniform"):
    """Train one method on /val; metrics on /val and /test. data = ((z_val, y_val), (z_test, y_test))
    instead of a dump path. stages: [(lr, iterations)] of the optimizers (default: the authors'
    rules); w_stages: those of ets_sctl's w phase (default: stages). Returns a dict shaped like
    calibench's JSON (params, val, test)."""
    base, loss_name = parse_method(method)
    (zv_np, yv_np), (zt_np, yt_np) = data if data is not None else load_dump(dump)
    k = zv_np.shape[1]
    zv, yv = torch.as_tensor(zv_np, dtype=DT), torch.as_tensor(yv_np, dtype=torch.int64)
    zt = torch.as_tensor(zt_np, dtype=DT)
    if isinstance(pts_init, str):
        with open(pts_init) as f:
            pts_init = json.load(f)
    model = Model(base, k, pts_init, pts_layers, pts_nodes)
    loss = Loss(loss_name, zv_np, yv_np, k, focal_gradient, sctl_norm, sctl_ab, lsplus_perfect)
    if stages is None:
        stages = default_stages(base, loss_name, lr, iterations, schedule)
    stages = [(float(a), int(b)) for a, b in stages]
    w_stages = stages if w_stages is None else [(float(a), int(b)) for a, b in w_stages]

    def counted(fn):
        def inner():
            val = loss(fn(zv), yv)
            loss.count()
            return val
        return inner

    if base in ("ts", "cts_nll"):
        training = run_lbfgs([model.t if base == "ts" else model.T], counted(model.logp), stages)
    elif base == "ets_sctl":
        training = run_lbfgs([model.t], counted(model.logp), stages, phase="t")
        training += run_lbfgs([model.w], counted(model.logp), w_stages, phase="w")
    elif base == "ets":
        training = run_lbfgs([model.t], counted(model.temperature_logp_ts), stages, phase="t")
        training.append(ets_weights_slsqp(model, loss, zv, yv))
    else:
        if weight_decay is None:
            weight_decay = 0.002 if base == "pts" else 0.0
        training = run_adam(list(model.net.parameters()), counted(model.logp), stages, weight_decay)

    with torch.no_grad():
        lv, lt = model.logp(zv), model.logp(zt)
        final = float(loss(lv, yv, count=False))
    params = {"base": base, "loss": loss_name, **model.params_json(), "final_loss": final, "training": training}
    if loss_name == "sctl":
        params.update(sctl_report(loss, lv, yv))
    if loss_name == "lsplus":
        params["priors"] = loss.priors.tolist()
    return {"method": method, "params": params, "val": metrics(lv.numpy(), yv_np), "test": metrics(lt.numpy(), yt_np)}


def sctl_report(loss, lv, yv):
    out = {"alpha": loss.alpha, "beta": loss.beta, "classes": loss.classes.tolist(),
           "l0": None if loss.l0 is None else loss.l0.tolist(), "l1": None if loss.l1 is None else loss.l1.tolist(),
           "evaluations": loss.evaluations}
    if loss.fit is not None:
        out.update(loss.fit)
        out["class_weights"] = sctl_w(sctl_normalise(loss.l1, loss.norm), loss.alpha, loss.beta).tolist()
    final = loss.class_losses(lv, yv).numpy()
    out["final_class_losses"] = final.tolist()
    out["final_class_weights"] = sctl_w(sctl_normalise(final, loss.norm), loss.alpha, loss.beta).tolist()
    return out


def logp_from_params(method, params, z, pts_layers=2, pts_nodes=5):
    """Log-probabilities of calibench's reported parameters (its `params` JSON) on logits z."""
    base, _ = parse_method(method)
    k = z.shape[1]
    model = Model(base, k, params.get("network"), pts_layers, pts_nodes)
    with torch.no_grad():
        if "temperature" in params:
            model.t.fill_(params["temperature"])
        if "temperatures" in params:
            model.T.copy_(torch.as_tensor(params["temperatures"], dtype=DT))
        if "weights" in params:
            model.w.copy_(torch.as_tensor(params["weights"], dtype=DT))
        return model.logp(torch.as_tensor(np.asarray(z, dtype=np.float64), dtype=DT)).numpy()


def loss_at(method, params, z, y, alpha=None, beta=None, **loss_kw):
    """The training loss at given parameters (sctl: with the given frozen (alpha, beta), the
    weights from the same evaluation's detached class losses)."""
    base, loss_name = parse_method(method)
    z = np.asarray(z, dtype=np.float64)
    lp = torch.as_tensor(logp_from_params(method, params, z, loss_kw.pop("pts_layers", 2),
                                          loss_kw.pop("pts_nodes", 5)))
    loss = Loss(loss_name, z, np.asarray(y), z.shape[1], **loss_kw)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    frozen = None
    if loss_name == "sctl":
        loss.alpha, loss.beta = alpha, beta
        if base == "ets":  # the class weights of ets's SLSQP phase: fixed at w = (1, 0, 0)
            start = torch.log_softmax(torch.as_tensor(z, dtype=DT) / float(params["temperature"]), dim=1)
            frozen = torch.as_tensor(1.0 + loss.weights(loss.class_losses(start, yt).numpy()), dtype=DT)
    with torch.no_grad():
        return float(loss(lp, yt, count=False, frozen_factor=frozen))


# ------------------------------------------------------------------------------ CLI


def parse_stages(text):
    out = []
    for part in text.split(","):
        a, b = part.split(":")
        out.append((float(a), int(b)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump")
    ap.add_argument("--method", required=True)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--schedule", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--stages", type=parse_stages, help="lr:iterations,... (overrides --lr/--iterations/--schedule)")
    ap.add_argument("--w-stages", type=parse_stages, help="ets_sctl's w phase (default: --stages)")
    ap.add_argument("--focal-gradient", choices=("full", "detached"), default="full")
    ap.add_argument("--sctl-norm", choices=("nd", "mm", "cm"), default="nd")
    ap.add_argument("--sctl-ab", help="A,B: use this (alpha, beta) at evaluation 1 instead of SciPy's fit")
    ap.add_argument("--pts-init", help="JSON {'layers': [{'weight', 'bias'}, ...]}")
    ap.add_argument("--write-init", metavar="SEED", type=int,
                    help="write a seeded random init for the method to --pts-init's path and use it")
    ap.add_argument("--pts-layers", type=int, default=2)
    ap.add_argument("--pts-nodes", type=int, default=5)
    ap.add_argument("--weight-decay", type=float)
    ap.add_argument("--lsplus-priors", choices=("uniform", "half", "keep"), default="uniform")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    base, _ = parse_method(a.method)
    if a.write_init is not None:
        if not a.pts_init:
            ap.error("--write-init needs --pts-init PATH")
        with h5py.File(a.dump, "r") as f:
            k = f["val/logits"].shape[1]
        with open(a.pts_init, "w") as f:
            json.dump(random_init(base, k, a.write_init, a.pts_layers, a.pts_nodes), f)
    ab = tuple(float(v) for v in a.sctl_ab.split(",")) if a.sctl_ab else None
    out = fit(a.dump, a.method, stages=a.stages, w_stages=a.w_stages, lr=a.lr, iterations=a.iterations,
              schedule=a.schedule, focal_gradient=a.focal_gradient, sctl_norm=a.sctl_norm, sctl_ab=ab,
              pts_init=a.pts_init, pts_layers=a.pts_layers, pts_nodes=a.pts_nodes, weight_decay=a.weight_decay,
              lsplus_perfect=a.lsplus_priors)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
