"""Mix-n-Match's multiclass isotonic calibrators, ported from zhang64-llnl/Mix-n-Match-Calibration
(util_calibration.py at d0dbd5a: `mir_calibrate`, `irova_calibrate`, `temperature_scaling` with
`mse_t`; demo_calibration.py at 330b487: "TS + IROvA"), with scikit-learn's IsotonicRegression and
scipy's L-BFGS-B as the code uses them. Two departures, both calibench's documented ones
(docs/calibrators.md): the softmax subtracts each row's maximum (the code's np.exp(logit) overflows
for logits above ~709), and the calibrated rows are divided by their sums (the code returns
iso(p) + 1e-9 p unnormalised).
"""
from __future__ import annotations

import numpy as np
from scipy import optimize
from sklearn.isotonic import IsotonicRegression


def softmax(z: np.ndarray, t: float = 1.0) -> np.ndarray:
    e = np.exp((z - z.max(axis=1, keepdims=True)) / t)
    return e / e.sum(axis=1, keepdims=True)


def _normalised(p: np.ndarray) -> np.ndarray:
    return p / p.sum(axis=1, keepdims=True)


def irova(p: np.ndarray, y: np.ndarray, p_eval: np.ndarray) -> np.ndarray:
    onehot = np.eye(p.shape[1])[y]
    out = p_eval.copy()
    for j in range(p.shape[1]):
        ir = IsotonicRegression(out_of_bounds="clip")
        ir.fit_transform(p[:, j], onehot[:, j])
        out[:, j] = ir.predict(p_eval[:, j]) + 1e-9 * p_eval[:, j]
    return _normalised(out)


def irm(p: np.ndarray, y: np.ndarray, p_eval: np.ndarray) -> np.ndarray:
    onehot = np.eye(p.shape[1])[y]
    ir = IsotonicRegression(out_of_bounds="clip")
    ir.fit_transform(p.flatten(), onehot.flatten())
    return _normalised(ir.predict(p_eval.flatten()).reshape(p_eval.shape) + 1e-9 * p_eval)


def ts_mse(z: np.ndarray, y: np.ndarray) -> float:
    onehot = np.eye(z.shape[1])[y]

    def mse_t(t):
        return np.mean((softmax(z, t[0]) - onehot) ** 2)

    return float(optimize.minimize(mse_t, 1.0, method="L-BFGS-B", bounds=((0.05, 5.0),), tol=1e-12).x[0])


def irova_ts(z: np.ndarray, y: np.ndarray, z_eval: np.ndarray) -> tuple[np.ndarray, float]:
    t = ts_mse(z, y)
    return irova(softmax(z, t), y, softmax(z_eval, t)), t
