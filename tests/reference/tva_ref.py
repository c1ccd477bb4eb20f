"""Float64 reference of Top-versus-All (TvA) scaling calibration (Le Coz, Herbin, Adjed,
"Confidence Calibration of Classifiers with Many Classes", NeurIPS 2024, arXiv 2411.02988),
ported from the authors' code: github allglc/tva-calibration, commit
b420bcf99a55555f8859f0bb54317a232fab83b9, calibrators.py (`fit_scaling_model`, `Temperature`,
`Vector`, `Dirichlet`; full_code/calibrators.py has the same scaling code, driven by
full_code/benchmark_calibration.py).  TvA changes the *loss* of a scaling map, not the map.

Map q = g(z) of the logits z (N x K), then, per row (the authors' binary_loss=True branch):

    t = argmax_j q_j          (of the SCALED logits, lowest index on ties; recomputed at every
                               evaluation, so for vs / matrix maps it moves during the fit)
    a = [t == y]              (correct under the current map)
    u = q_t - logsumexp_{j != t} q_j          (top-label log-odds; c = max softmax(q) = sigmoid(u))
    l = BCE(c, a) = -(a log c + (1 - a) log(1 - c)) = softplus(u) - a u
    dl/dq = (c - a) (e_t - r),  r_j = softmax_{j != t}(q)_j (r_t = 0)   (t, a held constant)

    F = mean_n l_n + R(params).

torch computes c = max(softmax(q)) and F.binary_cross_entropy clamps each log at -100 (and its
backward divides by max(c (1 - c), 1e-12)); this port uses the softplus form without clamps.

Maps, starts and penalties (the authors' values):

- ts:  q = z / T, parameter T, start 1.5, no penalty (T > 0 keeps t = argmax z).
- vs:  q = w * z (+ b): the authors' `Vector` has no bias (bias=False, the default here);
  calibench's vs has one (bias=True, unpenalised).  R = lam * mean_j (w_j - 1)^2, lam = 0.1
  (VS_reg_tva) or 0 (VS_tva).  Start w = 1 / T_tva, b = 0.
- matrix: q = x W^T + b with x = z (the authors' `Dirichlet` is an nn.Linear on the LOGITS) or
  x = log softmax(z) (Dirichlet calibration proper, calibench's dir_odir).
  R = off * sum_{i != j} W_ij^2 + mu * sum_i b_i^2 + d * mean_i (W_ii - 1)^2, the authors'
  off = mu = 1 (always on, unnormalised, no CV), d = 0.1 (Dir-ODIR_reg_tva) or 0 (Dir-ODIR_tva).
  Start W = I / T_tva, b = 0.

Solvers.  solver="adam" is the authors' loop: torch.optim.Adam(lr=1e-3, betas (0.9, 0.999),
eps 1e-8), minibatches of 512 consecutive rows in the given order (last one partial), each
batch's loss = batch-mean BCE + the whole R, `epochs` passes (200 for CIFAR/ImageNet in the
paper's code), last iterate returned; here in float64 with torch's single-tensor update order.
solver="exact" minimises the full-data F: for ts the global minimiser over b = 1/T in
[1e-8, 1e8] (F is smooth in b; grid of dF/db sign changes, brentq); for vs / matrix L-BFGS-B
plus Newton polishing, which needs a smooth F, i.e. top="input" (below).  With the authors'
top rule F is discontinuous (a row jumps between -log c and -log(1 - c) when its scaled argmax
reaches or leaves the label) and has kinks (two wrong classes tied), its minimisers sit on those
sets, and only an optimiser's trajectory defines the result, so exact is refused there.

top="input" (not the authors'): t and a frozen at the argmax of the UNSCALED z, c = softmax(q)_t.
Smooth; equal to the authors' F wherever the scaled argmax equals the unscaled one; for ts the
two are identical.

Apply (all maps, the authors' evaluation.py `metrics_from_logits_labels`): probabilities
softmax(q) for the whole row; prediction argmax q (kept by ts, can change for vs / matrix);
confidence max softmax(q).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq, minimize
from scipy.special import expit, log_softmax, logsumexp, softmax

B_MIN, B_MAX = 1e-8, 1e8           # bounds of b = 1/T, as calibench's ts
TS_GRID = np.logspace(-8, 8, 641)  # 0.025 decades: brackets for the sign changes of dF/db
T_START = 1.5                      # calibrators.py Temperature: nn.Parameter(torch.tensor(1.5))
VS_REG = 0.1                       # calibrators.py Vector(vec_reg=0.1)
DIR_OFF, DIR_BIAS, DIR_DIAG = 1.0, 1.0, 0.1   # Dirichlet(off_diag_reg=1, bias_reg=1, diag_reg=0.1)
ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
BATCH = 512                        # benchmark_calibration.py DataLoader(..., batch_size=512)
EPOCHS = 200                       # benchmark_calibration.py num_epochs (CIFAR, ImageNet)


# ---------------------------------------------------------------- the TvA loss on scaled logits
def top_index(q: np.ndarray) -> np.ndarray:
    return np.argmax(q, axis=1)  # lowest index on ties, as torch.max


def top_log_odds(q: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """u = q_t - logsumexp_{j != t} q_j and r = softmax over j != t (0 at t)."""
    n = np.arange(q.shape[0])
    rest = q.copy()
    rest[n, t] = -np.inf
    m = logsumexp(rest, axis=1)
    return q[n, t] - m, np.exp(rest - m[:, None])


def tva_terms(q: np.ndarray, y: np.ndarray, t: np.ndarray | None = None):
    """Per-row loss l_n and dl_n/dq (N x K).  t = None: argmax of q (the authors' rule)."""
    if q.shape[1] < 2:
        raise ValueError("TvA needs K >= 2")
    t = top_index(q) if t is None else t
    a = (t == y).astype(np.float64)
    u, r = top_log_odds(q, t)
    d = expit(u) - a
    g = -r * d[:, None]
    g[np.arange(q.shape[0]), t] += d
    return np.logaddexp(0.0, u) - a * u, g


def tva_loss(q: np.ndarray, y: np.ndarray, t: np.ndarray | None = None) -> float:
    return float(np.mean(tva_terms(q, y, t)[0]))


def nll_loss(q: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(log_softmax(q, axis=1)[np.arange(q.shape[0]), y]))


def _frozen(z: np.ndarray, top: str) -> np.ndarray | None:
    if top == "scaled":
        return None
    if top == "input":
        return top_index(z)
    raise ValueError(f"top must be 'scaled' or 'input', not {top!r}")


def adam(fun, theta0: np.ndarray, n: int, epochs: int = EPOCHS, batch: int = BATCH,
         lr: float = ADAM["lr"], beta1: float = ADAM["beta1"], beta2: float = ADAM["beta2"],
         eps: float = ADAM["eps"]) -> np.ndarray:
    """The authors' loop: fun(theta, rows) -> (batch objective, gradient); torch's single-tensor
    Adam (exp_avg.lerp_, exp_avg_sq.mul_.addcmul_, denom = sqrt(v) / sqrt(bc2) + eps)."""
    theta = np.array(theta0, dtype=np.float64)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    step = 0
    for _ in range(epochs):
        for s in range(0, n, batch):
            g = fun(theta, slice(s, min(s + batch, n)))[1]
            step += 1
            m = m + (1 - beta1) * (g - m)
            v = v * beta2 + (1 - beta2) * g * g
            denom = np.sqrt(v) / (1 - beta2 ** step) ** 0.5 + eps
            theta = theta + (-(lr / (1 - beta1 ** step))) * (m / denom)
    return theta


# ---------------------------------------------------------------- ts
def ts_tva_objective(b: float, z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """F(b) = mean l(b z) and dF/db (t = argmax z for every b > 0)."""
    loss, g = tva_terms(b * z, y, top_index(z))
    return float(np.mean(loss)), float(np.sum(g * z) / z.shape[0])


def _scalar_min(f, df) -> float:
    """Global minimiser on [B_MIN, B_MAX]: every sign change - to + of df on TS_GRID (exact
    zeros skipped: a derivative that underflows to 0 on a flat tail is no minimum) refined by
    brentq, plus B_MIN when the first nonzero df is > 0 and B_MAX when the last is < 0 (F still
    falling: the bound is reported, as calibench's ts); the lowest f wins (the first on ties)."""
    d = np.array([df(b) for b in TS_GRID])
    nz = np.flatnonzero(d)
    if len(nz) == 0:
        return 1.0                         # F constant (e.g. every row's logits equal)
    cands = []
    if d[nz[0]] > 0:
        cands.append(B_MIN)
    if d[nz[-1]] < 0:
        cands.append(B_MAX)
    for i, j in zip(nz[:-1], nz[1:]):
        if d[i] < 0 < d[j]:
            cands.append(TS_GRID[i + 1] if j > i + 1 else
                         brentq(df, TS_GRID[i], TS_GRID[j], xtol=1e-300,
                                rtol=4 * np.finfo(float).eps, maxiter=500))
    return cands[int(np.argmin([f(b) for b in cands]))]


def ts_tva_fit(logits_val: np.ndarray, y_val: np.ndarray, solver: str = "exact",
               epochs: int = EPOCHS, batch: int = BATCH) -> float:
    """T of the authors' TS_tva: minimises the mean TvA BCE of softmax(z / T)."""
    z = np.asarray(logits_val, dtype=np.float64)
    y = np.asarray(y_val, dtype=np.int64)
    if solver == "exact":
        b = _scalar_min(lambda b: ts_tva_objective(b, z, y)[0], lambda b: ts_tva_objective(b, z, y)[1])
        return 1.0 / b
    if solver != "adam":
        raise ValueError(f"solver must be 'exact' or 'adam', not {solver!r}")
    t_all = top_index(z)

    def fun(theta, rows):
        T = theta[0]
        zb = z[rows]
        loss, g = tva_terms(zb / T, y[rows], t_all[rows])
        return float(np.mean(loss)), np.array([-np.sum(g * zb) / (T * T * zb.shape[0])])

    return float(adam(fun, np.array([T_START]), len(y), epochs, batch)[0])


def ts_nll_fit(logits_val: np.ndarray, y_val: np.ndarray) -> float:
    """Plain temperature scaling (mean NLL, convex in b = 1/T), for comparison."""
    z = np.asarray(logits_val, dtype=np.float64)
    y = np.asarray(y_val, dtype=np.int64)
    zy = z[np.arange(len(y)), y]

    def df(b):
        return float(np.mean(np.sum(softmax(b * z, axis=1) * z, axis=1) - zy))

    return 1.0 / _scalar_min(lambda b: nll_loss(b * z, y), df)


def apply_ts(T: float, logits: np.ndarray) -> np.ndarray:
    return softmax(np.asarray(logits, dtype=np.float64) / T, axis=1)


# ---------------------------------------------------------------- exact solver for smooth F
def _exact(fun, theta0: np.ndarray) -> tuple[np.ndarray, dict]:
    """L-BFGS-B to its limits, then Newton steps (Hessian = central differences of the exact
    gradient; least-squares steps for the softmax's flat directions) while they lower F."""
    r = minimize(fun, theta0, jac=True, method="L-BFGS-B",
                 options={"maxiter": 20000, "maxcor": 30, "ftol": 1e-16, "gtol": 1e-14, "maxls": 50})
    x = r.x
    f, g = fun(x)
    for _ in range(20):
        if np.max(np.abs(g)) < 1e-14:
            break
        hess = np.empty((len(x), len(x)))
        for i in range(len(x)):
            e = np.zeros(len(x))
            e[i] = 1e-6
            hess[:, i] = (fun(x + e)[1] - fun(x - e)[1]) / 2e-6
        step = np.linalg.lstsq(0.5 * (hess + hess.T), -g, rcond=1e-12)[0]
        fn, gn = fun(x + step)
        if not fn <= f + 1e-15 * max(1.0, abs(f)):
            break
        x, f, g = x + step, fn, gn
    return x, {"objective": f, "grad_inf": float(np.max(np.abs(g))), "lbfgs": r.message}


def _solve(fun, theta0, n, solver, top, epochs, batch):
    if solver == "adam":
        return adam(fun, theta0, n, epochs, batch), {}
    if solver != "exact":
        raise ValueError(f"solver must be 'exact' or 'adam', not {solver!r}")
    if top != "input":
        raise ValueError("solver='exact' needs top='input': the authors' objective (top='scaled') "
                         "is discontinuous and has no well-defined exact minimiser")
    return _exact(lambda th: fun(th, slice(None)), theta0)


# ---------------------------------------------------------------- vs
def vs_tva_objective(theta: np.ndarray, z: np.ndarray, y: np.ndarray, lam: float = VS_REG,
                     bias: bool = False, top: str = "scaled", t_in=None) -> tuple[float, np.ndarray]:
    """theta = [w (K)] (bias=False) or [w, b] (bias=True); t_in: the rows' frozen top (top="input")."""
    k = z.shape[1]
    w = theta[:k]
    b = theta[k:] if bias else 0.0
    t = _frozen(z, top) if t_in is None else t_in
    loss, g = tva_terms(z * w + b, y, t)
    n = z.shape[0]
    f = float(np.mean(loss)) + lam * float(np.mean((w - 1.0) ** 2))
    gw = np.sum(g * z, axis=0) / n + 2.0 * lam * (w - 1.0) / k
    return f, (np.concatenate([gw, np.sum(g, axis=0) / n]) if bias else gw)


def vs_tva_fit(logits_val: np.ndarray, y_val: np.ndarray, lam: float = VS_REG, bias: bool = False,
               start_T: float | None = None, top: str = "scaled", solver: str = "adam",
               epochs: int = EPOCHS, batch: int = BATCH, return_info: bool = False):
    """(w, b) of softmax(w z + b): the authors' VS_reg_tva by default (lam 0.1, no bias, Adam
    from w = 1/T_tva with T_tva = ts_tva_fit(solver=...)); b = 0 when bias=False."""
    z = np.asarray(logits_val, dtype=np.float64)
    y = np.asarray(y_val, dtype=np.int64)
    k = z.shape[1]
    T0 = ts_tva_fit(z, y, solver, epochs, batch) if start_T is None else start_T
    theta0 = np.full(2 * k if bias else k, 0.0)
    theta0[:k] = 1.0 / T0
    t_all = _frozen(z, top)

    def fun(th, rows):
        return vs_tva_objective(th, z[rows], y[rows], lam, bias, top,
                                None if t_all is None else t_all[rows])

    x, info = _solve(fun, theta0, len(y), solver, top, epochs, batch)
    w, b = x[:k].copy(), (x[k:].copy() if bias else np.zeros(k))
    return ((w, b), info) if return_info else (w, b)


def apply_vs(params, logits: np.ndarray) -> np.ndarray:
    w, b = params
    return softmax(np.asarray(logits, dtype=np.float64) * w + b, axis=1)


# ---------------------------------------------------------------- matrix (ms / Dirichlet)
def matrix_input(logits: np.ndarray, input: str) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if input == "logits":
        return z
    if input == "logp":
        return log_softmax(z, axis=1)
    raise ValueError(f"input must be 'logits' or 'logp', not {input!r}")


def matrix_tva_objective(theta: np.ndarray, x: np.ndarray, y: np.ndarray, off: float = DIR_OFF,
                         mu: float = DIR_BIAS, diag: float = DIR_DIAG, t=None) -> tuple[float, np.ndarray]:
    """theta = [W row-major (K x K), b (K)]; q = x W^T + b; t: frozen top per row or None
    (the authors' argmax of q)."""
    k = x.shape[1]
    W = theta[:k * k].reshape(k, k)
    b = theta[k * k:]
    loss, g = tva_terms(x @ W.T + b, y, t)
    n = x.shape[0]
    offd = W - np.diag(np.diag(W))
    dd = np.diag(W) - 1.0
    f = float(np.mean(loss)) + off * float(np.sum(offd ** 2)) + mu * float(np.sum(b ** 2)) \
        + diag * float(np.mean(dd ** 2))
    gW = g.T @ x / n + 2.0 * off * offd + np.diag(2.0 * diag * dd / k)
    return f, np.concatenate([gW.ravel(), np.sum(g, axis=0) / n + 2.0 * mu * b])


def matrix_tva_fit(logits_val: np.ndarray, y_val: np.ndarray, input: str = "logits",
                   off: float = DIR_OFF, mu: float = DIR_BIAS, diag: float = DIR_DIAG,
                   start_T: float | None = None, top: str = "scaled", solver: str = "adam",
                   epochs: int = EPOCHS, batch: int = BATCH, return_info: bool = False):
    """(W, b) of softmax(W x + b), from W = I / T_tva, b = 0.  Defaults: the authors'
    Dir-ODIR_reg_tva (x = logits, off = mu = 1, diag = 0.1, Adam).  diag = 0: Dir-ODIR_tva;
    off = mu = diag = 0: a plain ms trained by the TvA loss (not in the paper)."""
    z = np.asarray(logits_val, dtype=np.float64)
    y = np.asarray(y_val, dtype=np.int64)
    x = matrix_input(z, input)
    k = z.shape[1]
    T0 = ts_tva_fit(z, y, solver, epochs, batch) if start_T is None else start_T
    theta0 = np.concatenate([(np.eye(k) / T0).ravel(), np.zeros(k)])
    t_all = _frozen(z, top)

    def fun(th, rows):
        return matrix_tva_objective(th, x[rows], y[rows], off, mu, diag,
                                    None if t_all is None else t_all[rows])

    th, info = _solve(fun, theta0, len(y), solver, top, epochs, batch)
    W, b = th[:k * k].reshape(k, k).copy(), th[k * k:].copy()
    return ((W, b), info) if return_info else (W, b)


def dir_tva_fit(logits_val: np.ndarray, y_val: np.ndarray, regularization: bool = True, **kw):
    """The authors' Dir-ODIR_reg_tva (regularization=True) or Dir-ODIR_tva."""
    return matrix_tva_fit(logits_val, y_val, "logits", DIR_OFF, DIR_BIAS,
                          DIR_DIAG if regularization else 0.0, **kw)


def apply_matrix(params, logits: np.ndarray, input: str = "logits") -> np.ndarray:
    W, b = params
    return softmax(matrix_input(logits, input) @ W.T + b, axis=1)


def apply_dir(params, logits: np.ndarray) -> np.ndarray:
    return apply_matrix(params, logits, "logits")
