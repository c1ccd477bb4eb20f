# What the Python package accepts and refuses: every value and label dtype, layouts (strided,
# Fortran-order, reversed, read-only), the zero-copy paths of the sweeps and write_dump, PyTorch
# tensors (when torch imports), and the errors: ValueError with the engine's message for bad
# input, naming the argument and the first offending index.
import threading

import numpy as np
import pytest

import calibench

SEED = 20240611  # fixed; change it to rerun on other data


def make_data(n=400, k=7, seed=SEED, scale=3.0):
    """Logits exactly representable in float16 (so every dtype holds the same values) and labels."""
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(n, k)) * scale).astype(np.float16).astype(np.float64)
    labels = rng.integers(0, k, size=n)
    return logits, labels


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_every_value_dtype_gives_the_same_metrics(dtype):
    logits, labels = make_data()
    assert calibench.evaluate(logits.astype(dtype), labels) == calibench.evaluate(logits, labels)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64])
def test_every_label_dtype_and_column_labels(dtype):
    logits, labels = make_data()
    want = calibench.evaluate(logits, labels)
    assert calibench.evaluate(logits, labels.astype(dtype)) == want
    assert calibench.evaluate(logits, labels.astype(dtype).reshape(-1, 1)) == want


def test_python_lists_are_accepted():
    logits, labels = make_data(n=50, k=3)
    assert calibench.evaluate(logits.tolist(), labels.tolist()) == calibench.evaluate(logits, labels)


def test_layouts_give_the_same_results():
    logits, labels = make_data()
    want = calibench.evaluate(logits, labels)
    fortran = np.asfortranarray(logits)
    assert not fortran.flags.c_contiguous
    assert calibench.evaluate(fortran, labels) == want
    wide = np.zeros((logits.shape[0], 2 * logits.shape[1]), dtype=np.float32)
    wide[:, ::2] = logits
    assert calibench.evaluate(wide[:, ::2], labels) == want  # column stride 2
    assert calibench.evaluate(logits[::-1][::-1], labels) == want
    reversed_rows = calibench.evaluate(logits[::-1], labels[::-1])
    assert reversed_rows["ece"] == pytest.approx(want["ece"], abs=1e-15)  # only the summation order differs
    assert calibench.evaluate(logits.astype(">f8"), labels.astype(">i4")) == want  # big-endian
    readonly = logits.copy()
    readonly.flags.writeable = False
    assert calibench.evaluate(readonly, labels) == want


def test_sweeps_read_contiguous_float32_in_place():
    logits, labels = make_data(n=3000, k=10)
    z32 = np.ascontiguousarray(logits, dtype=np.float32)
    y32 = labels.astype(np.int32)
    temps = np.linspace(0.5, 3.0, 11)
    before = calibench._core._input_copies()
    in_place = calibench.sweep_temperatures(z32, y32, temperatures=temps)
    assert calibench._core._input_copies() == before, "float32 C-contiguous logits and int32 labels were copied"
    # Strided, Fortran-order, float64 and int64 inputs are converted first, with the same results.
    for z, y in ((np.asfortranarray(z32), y32), (logits, labels), (np.repeat(z32, 2, axis=1)[:, ::2], y32)):
        copied = calibench.sweep_temperatures(z, y, temperatures=temps)
        for key in ("ece", "mce", "adaece", "nll", "brier", "accuracy"):
            np.testing.assert_array_equal(copied[key], in_place[key], err_msg=key)
    assert calibench._core._input_copies() > before


def test_write_dump_writes_contiguous_arrays_in_place(tmp_path):
    logits, labels = make_data(n=200, k=4)
    z32, y32 = logits.astype(np.float32), labels.astype(np.int32)
    before = calibench._core._input_copies()
    calibench.write_dump(tmp_path / "a.h5", {"val": (z32, y32), "test": (z32[:100], y32[:100])})
    assert calibench._core._input_copies() == before
    values, read_labels, is_probs = calibench.read_dump(tmp_path / "a.h5", "test")
    np.testing.assert_array_equal(values, z32[:100])
    np.testing.assert_array_equal(read_labels, y32[:100])
    assert not is_probs


def test_inverse_temperature_sequences():
    logits, labels = make_data()
    b = np.linspace(0.25, 2.0, 36)
    from_array = calibench.sweep_temperatures(logits, labels, inverse_temperatures=b)
    from_text = calibench.sweep_temperatures(logits, labels, inverse_temperatures="0.25:2:0.05")
    np.testing.assert_allclose(from_array["candidates"], b, rtol=1e-14)
    np.testing.assert_allclose(from_array["ece"], from_text["ece"], rtol=0, atol=1e-12)
    # The same candidates as plain temperatures.
    plain = calibench.sweep_temperatures(logits, labels, temperatures=1.0 / b)
    np.testing.assert_allclose(from_array["nll"], plain["nll"], rtol=1e-12)


def test_calibrator_objects():
    logits, labels = make_data()
    cal = calibench.fit("ts", logits, labels, backend="cpu")
    assert cal.method == "ts" and set(cal.params) == {"temperature"} and not cal.is_probs
    probs = cal.transform(logits)
    np.testing.assert_allclose(probs, softmax(logits / cal.params["temperature"]), rtol=1e-12, atol=1e-15)
    assert probs.flags.writeable and probs.flags.owndata is False  # a view of the engine's buffer
    assert "Calibrator('ts'" in repr(cal)
    from_dict = calibench.Calibrator.from_json({"method": "ts", "params": {"temperature": 2.0}})
    np.testing.assert_allclose(from_dict.transform(logits), softmax(logits / 2.0), rtol=1e-12, atol=1e-15)
    # Fitted on probabilities: transforms probabilities.
    p = softmax(logits)
    on_probs = calibench.fit("ts", p, labels, probs=True, backend="cpu")
    assert on_probs.is_probs
    assert on_probs.params["temperature"] == pytest.approx(cal.params["temperature"], rel=1e-6)
    np.testing.assert_allclose(on_probs.transform(p), probs, atol=1e-6)


def test_threads_release_the_gil_and_agree():
    logits, labels = make_data(n=2000, k=10)
    want = calibench.evaluate(logits, labels)
    results = []

    def work():
        results.append(calibench.evaluate(logits, labels))
        results.append(calibench.sweep_temperatures(logits, labels, temperatures=[1.0, 2.0])["ece"].tolist())

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r for r in results if isinstance(r, dict)] == [want] * 3
    assert len({tuple(r) for r in results if isinstance(r, list)}) == 1


# ---- errors ------------------------------------------------------------------------------------


def raises(match, fn, *args, error=ValueError, **kwargs):
    with pytest.raises(error, match=match) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_non_finite_values_name_the_index():
    logits, labels = make_data()
    bad = logits.copy()
    bad[3, 1] = np.nan
    raises(r"^logits: non-finite value nan at index \[3, 1\]$", calibench.evaluate, bad, labels)
    bad[3, 1] = -np.inf
    raises(r"logits: non-finite value -inf at index \[3, 1\]", calibench.sweep_temperatures, bad.astype(np.float32),
           labels, temperatures=[1.0])
    raises(r"val_logits: non-finite value -inf at index \[3, 1\]", calibench.fit, "ts", bad, labels)
    raises(r"overflows float32", calibench.sweep_temperatures, np.full((4, 3), 1e300), [0, 1, 2, 0],
           temperatures=[1.0])


def test_probability_checks():
    logits, labels = make_data()
    p = softmax(logits)
    bad = p.copy()
    bad[5, 2] = -0.01
    raises(r"probs: negative probability -0.01 at index \[5, 2\]", calibench.evaluate, bad, labels, probs=True)
    raises(r"probs: probabilities at index 0 sum to 2, not 1 \(tolerance 0.001\)", calibench.evaluate, p * 2, labels,
           probs=True)
    zero = p.copy()
    zero[0] = 0
    zero[0, (labels[0] + 1) % p.shape[1]] = 1
    raises(r"probability 0 on the label at index 0", calibench.fit, "ts", zero, labels, probs=True)


def test_shape_and_type_errors():
    logits, labels = make_data(n=10, k=4)
    raises(r"logits: expected rank 2 \[N, K\] \(or a binary \[N\] or \[N, 1\]\), found rank 3 shape \[10, 2, 2\]",
           calibench.evaluate, logits.reshape(10, 2, 2), labels)
    raises(r"logits: K = 0 class \(shape \[10, 0\]\); need at least 2 classes", calibench.evaluate, logits[:, :0],
           labels)
    raises(r"logits: N = 0 samples \(shape \[0\]\)", calibench.evaluate, logits[:0, 0], labels[:0])
    raises(r"logits: N = 0 samples", calibench.evaluate, logits[:0], labels[:0])
    raises(r"labels: length 9 differs from logits rows 10", calibench.evaluate, logits, labels[:9])
    raises(r"labels: expected shape \[N\] or \[N, 1\], found \[10, 2\]", calibench.evaluate, logits,
           np.stack([labels, labels], axis=1))
    raises(r"labels: expected integer labels, found float64", calibench.evaluate, logits, labels.astype(float))
    raises(r"labels: expected integer labels, found bool", calibench.evaluate, logits, labels > 1)
    raises(r"logits: expected floating-point values .* found int64", calibench.evaluate, labels.reshape(5, 2),
           labels[:5])
    raises(r"logits: expected floating-point values .* found complex128", calibench.evaluate,
           logits.astype(complex), labels)
    raises(r"logits: unsupported array dtype object", calibench.evaluate, logits.astype(object), labels)


def test_label_range():
    logits, labels = make_data(n=10, k=4)
    bad = labels.copy()
    bad[7] = 4
    raises(r"^labels: label 4 at index 7 outside \[0, 4\)$", calibench.evaluate, logits, bad)
    bad[7] = -1
    raises(r"labels: label -1 at index 7 outside \[0, 4\)", calibench.evaluate, logits, bad)
    raises(r"labels: label -1 at index 7 outside \[0, 4\)", calibench.sweep_temperatures, logits.astype(np.float32),
           bad.astype(np.int32), temperatures=[1.0])
    raises(r"labels: label 255 at index 7 outside \[0, 4\)", calibench.evaluate, logits, bad.astype(np.uint8))
    raises(r"val_labels: label -1 at index 7", calibench.fit, "ts", logits, bad)


def test_option_errors_carry_the_engine_messages():
    logits, labels = make_data(n=50, k=3)
    raises(r"'nope'.*one of: calibench, torchmetrics", calibench.evaluate, logits, labels, conventions="nope")
    raises(r"'sideways'.*one of: right-closed", calibench.evaluate, logits, labels, binning="sideways")
    raises(r"nll", calibench.evaluate, logits, labels, nll_clip=0.7)
    raises(r"bins must be at least 1", calibench.evaluate, logits, labels, bins=0)
    raises(r"--level must be a fraction", calibench.evaluate, logits, labels, bootstrap=10, level=1.5)
    raises(r"unknown method 'no_such_method'", calibench.fit, "no_such_method", logits, labels)
    raises(r"--objective must be nll, ece, adaece, mse or tva", calibench.fit, "ts", logits, labels, objective="brier")
    raises(r"--grid: step must be > 0", calibench.fit, "ts", logits, labels, objective="ece", grid="1:2:0")
    raises(r"--calib-bins must be a positive integer up to 1000000 or 'auto'", calibench.fit, "cws", logits, labels, calib_bins=0)
    raises(r"accuracy_constraint must be", calibench.fit, "cts_greedy", logits, labels, accuracy_constraint="maybe")
    raises(r"unknown backend 'gpu'", calibench.fit, "ts", logits, labels, backend="gpu")
    raises(r"temperature candidate 1 is -1", calibench.sweep_temperatures, logits, labels, temperatures=[1, -1])
    raises(r"weight candidate 0 is 1.5", calibench.sweep_weights, logits, labels, [1.5])
    raises(r"not an arithmetic grid \(candidate 1 is 2.0, start \+ 1 \* step is 2.5\)", calibench.sweep_temperatures,
           logits, labels, inverse_temperatures=[1, 2, 4])
    raises(r"exactly one of", calibench.sweep_temperatures, logits, labels)
    raises(r"calibrator JSON: unknown calibration method 'x'", calibench.Calibrator.from_json,
           '{"method": "x", "params": {}}')
    cts = calibench.Calibrator.from_json({"method": "cts_greedy", "params": {"temperatures": [1.0, 2.0]}})
    raises(r"2 class temperatures for K = 3", cts.transform, logits)
    if not calibench.device_info()["cuda_built"]:
        raises(r"CUDA backend is not built", calibench.sweep_temperatures, logits, labels, temperatures=[1.0],
               backend="cuda")


def test_dump_errors(tmp_path):
    logits, labels = make_data(n=10, k=4)
    raises(r"missing\.h5", calibench.read_dump, tmp_path / "missing.h5", "test")
    calibench.write_dump(tmp_path / "ok.h5", {"val": (logits, labels), "test": (logits, labels)})
    raises(r"/train: group not found", calibench.read_dump, tmp_path / "ok.h5", "train")
    raises(r"a dump needs the splits val and test \(got val\)", calibench.write_dump, tmp_path / "x.h5",
           {"val": (logits, labels)})
    raises(r"K = 3 differs from the first split's K = 4", calibench.write_dump, tmp_path / "x.h5",
           {"val": (logits, labels), "test": (logits[:, :3], labels % 3)})
    raises(r"expected a \(values, labels\) pair", calibench.write_dump, tmp_path / "x.h5", {"val": logits})
    assert not (tmp_path / "x.h5").exists()


# ---- PyTorch -----------------------------------------------------------------------------------


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    logits, labels = make_data()
    want = calibench.evaluate(logits, labels)
    z, y = torch.from_numpy(logits), torch.from_numpy(labels)
    assert calibench.evaluate(z, y) == want
    for dtype in (torch.float16, torch.float32, torch.bfloat16):
        got = calibench.evaluate(z.to(dtype), y)
        ref = calibench.evaluate(z.to(dtype).to(torch.float64).numpy(), labels)
        assert got == ref, dtype
    assert calibench.evaluate(z.t().contiguous().t(), y.to(torch.int32)) == want  # column-major view
    assert calibench.evaluate(z.clone().requires_grad_(True), y) == want
    z32 = z.to(torch.float32).contiguous()
    before = calibench._core._input_copies()
    r = calibench.sweep_temperatures(z32, y.to(torch.int32), temperatures=[1.0, 1.5])
    assert calibench._core._input_copies() == before, "a contiguous float32 tensor was copied"
    from_numpy = calibench.sweep_temperatures(z32.numpy(), labels, temperatures=[1.0, 1.5])
    np.testing.assert_array_equal(r["ece"], from_numpy["ece"])
    cal = calibench.fit("ts", z, y, backend="cpu")
    from_numpy = calibench.fit("ts", logits, labels, backend="cpu")
    np.testing.assert_array_equal(cal.transform(z), from_numpy.transform(logits))
    if torch.cuda.is_available():
        raises(r"move it to the CPU", calibench.evaluate, z.cuda(), y)


def test_sweep_dispatches_to_the_families():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(300, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=300)
    for family, call in (("temperature", lambda: calibench.sweep_temperatures(logits, labels, temperatures=[0.5, 2.0])),
                         ("inverse-temperature",
                          lambda: calibench.sweep_temperatures(logits, labels, inverse_temperatures=[0.5, 1.0, 1.5])),
                         ("weight", lambda: calibench.sweep_weights(logits, labels, [0.2, 0.9]))):
        cands = {"temperature": [0.5, 2.0], "inverse-temperature": [0.5, 1.0, 1.5], "weight": [0.2, 0.9]}[family]
        got, want = calibench.sweep(logits, labels, family, cands), call()
        for key in ("ece", "nll", "brier", "accuracy"):
            np.testing.assert_array_equal(got[key], want[key])
    with pytest.raises(ValueError, match="family"):
        calibench.sweep(logits, labels, "class-temperature", [1.0])
