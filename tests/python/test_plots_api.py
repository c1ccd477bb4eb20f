# python/calibench/plots.py: the script the CLI runs by path (`eval --plot`, `fit --plot`) on
# hand-made plot-data JSON (every kind and format, two panels, every validation error exits 2
# naming the key, exit 4 without matplotlib, no package needed), and the Python API
# (calibench.plot_data / plot_reliability) against an independent NumPy computation. Skipped
# without matplotlib; the API tests are skipped until the installed package has plot_reliability.
import copy
import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # the tests draw off screen

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "python" / "calibench" / "plots.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KINDS = ("reliability", "retention", "density")
MISSING = "calibench plots need matplotlib: python3 -m pip install matplotlib"


# ---------------------------------------------------------------------------------------------
# Hand-made plot data (plain NumPy, independent of plots.py)


def synthetic(n, k, seed, scale=2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k)) * 1.5
    logits[np.arange(n), labels] += rng.normal(2.0, 1.5, size=n)
    return logits * scale, labels


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reliability_bins(conf, correct, m):
    """Right-closed equal-width bins: bin = ceil(c M) - 1 clipped to [0, M-1] (c = 0 in bin 0)."""
    b = np.clip(np.ceil(conf * m).astype(np.int64) - 1, 0, m - 1)
    out = []
    for i in range(m):
        sel = b == i
        cnt = int(sel.sum())
        out.append([cnt, float(correct[sel].mean()) if cnt else None, float(conf[sel].mean()) if cnt else None])
    return out


def ece_of(bins, n):
    return sum(c / n * abs(a - p) for c, a, p in bins if c)


def retention_of(conf, correct):
    order = sorted(range(conf.size), key=lambda i: (-conf[i], i))  # descending, ties by index
    out = [None]
    for i in range(1, 101):
        k = math.ceil(i * conf.size / 100)  # exact for these sizes (checked against integers below)
        assert k == (i * conf.size + 99) // 100
        out.append(sum(bool(correct[j]) for j in order[:k]) / k)
    return out


def density_of(conf, correct):
    edges = [j / 50 for j in range(51)]
    slot = np.searchsorted(np.asarray(edges[1:-1]), conf, side="right")  # e_j <= c < e_{j+1}; c = 1 in 49
    return {"edges": edges,
            "correct": [int(np.sum((slot == j) & correct)) for j in range(50)],
            "incorrect": [int(np.sum((slot == j) & ~correct)) for j in range(50)]}


def make_panel(label, n=600, k=5, m=10, seed=0, scale=2.0):
    z, y = synthetic(n, k, seed, scale)
    p = softmax(z)
    conf, correct = p.max(axis=1), p.argmax(axis=1) == y
    bins = reliability_bins(conf, correct, m)
    return {"label": label, "ece": ece_of(bins, n), "accuracy": float(correct.mean()), "n": n,
            "reliability": bins, "retention": retention_of(conf, correct), "r_auc": 0.9,
            "density": density_of(conf, correct)}


def make_data(panels=2, m=10):
    return {"title": "synth.h5 /test (N = 600, K = 5)", "bins": m, "bin_rule": "right-closed",
            "panels": [make_panel(lab, m=m, seed=i, scale=2.0 / (1 + i))
                       for i, lab in enumerate(["uncalibrated", "ts (T = 1.52)"][:panels])]}


def run_script(data_path, out, *args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), str(data_path), "--out", str(out), *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env)


def write(tmp_path, data, name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them
    return path


def ok(proc):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


# ---------------------------------------------------------------------------------------------
# Script


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_two_panels_png(tmp_path, kind):
    data = write(tmp_path, make_data(panels=2))
    out = tmp_path / f"{kind}.png"
    proc = ok(run_script(data, out, "--kind", kind))
    assert proc.stdout.strip() == str(out)
    blob = out.read_bytes()
    assert blob.startswith(PNG_SIGNATURE) and len(blob) > 10_000
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_default_kind_one_panel_svg_pdf_and_same_bytes(tmp_path):
    data = write(tmp_path, make_data(panels=1))
    svg = tmp_path / "rel.svg"
    ok(run_script(data, svg))
    text = svg.read_text()
    assert "<svg" in text and "uncalibrated" in text and "synth.h5 /test" in text
    again = tmp_path / "again.svg"
    ok(run_script(data, again))
    assert again.read_bytes() == svg.read_bytes()  # no dates: the same data give the same file
    pdf = tmp_path / "rel.pdf"
    ok(run_script(data, pdf, "--kind", "density"))
    assert pdf.read_bytes().startswith(b"%PDF")


def test_stdin_and_nulls_and_empty_bins(tmp_path):
    data = make_data(panels=1)
    panel = data["panels"][0]
    assert any(b[0] == 0 for b in panel["reliability"])  # an empty bin (no bar)
    panel["r_auc"] = None
    panel["retention"][50] = None
    panel["reliability"][-1][2] = None
    out = tmp_path / "stdin.png"
    for kind in KINDS:
        proc = subprocess.run([sys.executable, str(SCRIPT), "-", "--out", str(out), "--kind", kind],
                              input=json.dumps(data), capture_output=True, text=True, timeout=120)
        ok(proc)
        assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_script_needs_no_package(tmp_path):
    """A calibench that cannot be imported does not matter to the script."""
    fake = tmp_path / "fake" / "calibench"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('the package must not be imported')\n")
    env = dict(os.environ, PYTHONPATH=str(fake.parent))
    out = tmp_path / "x.png"
    ok(run_script(write(tmp_path, make_data()), out, env=env))
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def _hide_matplotlib(tmp_path):
    fake = tmp_path / "nomatplotlib"
    fake.mkdir()
    (fake / "matplotlib.py").write_text("raise ImportError('No module named matplotlib (hidden by the test)')\n")
    return str(fake)


def test_exit_4_without_matplotlib(tmp_path):
    env = dict(os.environ, PYTHONPATH=_hide_matplotlib(tmp_path))
    out = tmp_path / "x.png"
    proc = run_script(write(tmp_path, make_data()), out, env=env)
    assert proc.returncode == 4, proc.stderr
    assert MISSING in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() and proc.stdout == ""


def test_module_imports_without_matplotlib(tmp_path):
    """Imported by path without matplotlib: validation works, drawing raises the install hint."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('plots', {str(SCRIPT)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "data = json.loads(sys.stdin.read()); m.validate(data)\n"
        "try:\n    m.plot_json(data)\nexcept ImportError as e:\n    print(e)\n"
    )
    env = dict(os.environ, PYTHONPATH=_hide_matplotlib(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(make_data()), capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == MISSING


def _set(path, value):
    def mutate(d):
        obj = d
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(d):
        obj = d
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]
    return mutate


def _append(path, value):
    def mutate(d):
        obj = d
        for key in path:
            obj = obj[key]
        obj.append(value)
    return mutate


P0, P1 = ("panels", 0), ("panels", 1)
BAD_DATA = {
    "missing title": (_delete(("title",)), "missing key 'title'"),
    "missing panels": (_delete(("panels",)), "missing key 'panels'"),
    "missing density": (_delete(P1 + ("density",)), "panels[1]: missing key 'density'"),
    "missing edges": (_delete(P0 + ("density", "edges")), "panels[0].density: missing key 'edges'"),
    "missing r_auc": (_delete(P0 + ("r_auc",)), "panels[0]: missing key 'r_auc'"),
    "title not a string": (_set(("title",), 3), "title"),
    "bins zero": (_set(("bins",), 0), "bins"),
    "bins float": (_set(("bins",), 10.0), "bins"),
    "bin rule": (_set(("bin_rule",), "torchmetrics"), "bin_rule"),
    "no panels": (_set(("panels",), []), "panels: no panels"),
    "panel not an object": (_set(P1, [1, 2]), "panels[1]: expected an object"),
    "label": (_set(P0 + ("label",), None), "panels[0].label"),
    "ece nan": (_set(P0 + ("ece",), math.nan), "panels[0].ece"),
    "ece null": (_set(P0 + ("ece",), None), "panels[0].ece"),
    "accuracy above 1": (_set(P1 + ("accuracy",), 1.5), "panels[1].accuracy"),
    "n bool": (_set(P0 + ("n",), True), "panels[0].n"),
    "r_auc infinite": (_set(P0 + ("r_auc",), math.inf), "panels[0].r_auc"),
    "reliability short": (_delete(P0 + ("reliability", 9)), "panels[0].reliability: 9 entries, expected 10"),
    "reliability long": (_append(P1 + ("reliability",), [0, None, None]),
                         "panels[1].reliability: 11 entries, expected 10"),
    "reliability entry": (_set(P0 + ("reliability", 4), [1, 0.5]), "panels[0].reliability[4]"),
    "reliability nan": (_set(P0 + ("reliability", 3, 1), math.nan), "panels[0].reliability[3][1]"),
    "confidence negative": (_set(P0 + ("reliability", 6, 2), -0.1), "panels[0].reliability[6][2]"),
    "count negative": (_set(P0 + ("reliability", 2, 0), -1), "panels[0].reliability[2][0]"),
    "count float": (_set(P0 + ("reliability", 2, 0), 2.5), "panels[0].reliability[2][0]"),
    "counts sum": (_set(P0 + ("n",), 601), "panels[0].reliability: the counts sum to 600, not n = 601"),
    "retention short": (_delete(P0 + ("retention", 100)), "panels[0].retention: 100 entries, expected 101"),
    "retention nan": (_set(P1 + ("retention", 37), math.nan), "panels[1].retention[37]"),
    "retention first": (_set(P0 + ("retention", 0), 1.0), "panels[0].retention[0]"),
    "edges short": (_delete(P0 + ("density", "edges", 50)), "panels[0].density.edges: 50 entries, expected 51"),
    "edge off": (_set(P0 + ("density", "edges", 7), 0.15), "panels[0].density.edges[7]"),
    "edge nan": (_set(P0 + ("density", "edges", 3), math.nan), "panels[0].density.edges[3]"),
    "correct short": (_delete(P0 + ("density", "correct", 0)), "panels[0].density.correct: 49 entries, expected 50"),
    "incorrect long": (_append(P1 + ("density", "incorrect"), 0),
                       "panels[1].density.incorrect: 51 entries, expected 50"),
    "density count": (_set(P0 + ("density", "incorrect", 5), -3), "panels[0].density.incorrect[5]"),
    "density sum": (_set(P0 + ("density", "correct", 49), 10 ** 6), "panels[0].density: correct and incorrect"),
    "density not an object": (_set(P0 + ("density",), []), "panels[0].density: expected an object"),
}


@pytest.fixture(scope="module")
def plots_main():
    """plots.main, loaded by path (as the script; no package): the validation cases run in this
    process to keep the suite fast, two of them also as a subprocess below."""
    spec = importlib.util.spec_from_file_location("calibench_plots_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_exits_2_naming_the_key(tmp_path, capsys, plots_main, case):
    mutate, expected = BAD_DATA[case]
    data = make_data(panels=2)
    mutate(data)
    out = tmp_path / "x.png"
    with pytest.raises(SystemExit) as exit_:
        plots_main([str(write(tmp_path, data)), "--out", str(out)])
    captured = capsys.readouterr()
    assert exit_.value.code == 2, f"{case}: exit {exit_.value.code} {captured.err}"
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calibench plots: error: "), captured.err
    assert expected in lines[0], lines[0]
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize("case", ["missing density", "reliability nan"])
def test_bad_data_exits_2_as_a_script(tmp_path, case):
    mutate, expected = BAD_DATA[case]
    data = make_data(panels=2)
    mutate(data)
    out = tmp_path / "x.png"
    proc = run_script(write(tmp_path, data), out)
    assert proc.returncode == 2, f"{case}: rc={proc.returncode} {proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calibench plots: error: ") and expected in lines[0], lines
    assert not out.exists()


@pytest.mark.parametrize("args, expected", [
    (["--kind", "pie"], "--kind"),
    (["--out-typo"], "--out"),
])
def test_bad_arguments_exit_2(tmp_path, args, expected):
    data = write(tmp_path, make_data())
    proc = subprocess.run([sys.executable, str(SCRIPT), str(data), "--out", str(tmp_path / "x.png"), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name, expected", [
    ("plot.jpg", "'.jpg'"), ("plot", "(none)"), ("missing/plot.png", "does not exist"),
])
def test_bad_out_exits_2(tmp_path, name, expected):
    proc = run_script(write(tmp_path, make_data()), tmp_path / name)
    assert proc.returncode == 2 and "--out" in proc.stderr and expected in proc.stderr, proc.stderr


def test_bad_input_file_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{\"title\": ")
    proc = run_script(bad, tmp_path / "x.png")
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr
    proc = run_script(tmp_path / "absent.json", tmp_path / "x.png")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = run_script(write(tmp_path, [1, 2]), tmp_path / "x.png")
    assert proc.returncode == 2 and "expected a JSON object" in proc.stderr


# ---------------------------------------------------------------------------------------------
# API (the installed package)


@pytest.fixture(scope="module")
def cb():
    import calibench

    if not hasattr(calibench, "plot_reliability"):
        pytest.skip("package not reinstalled: the installed calibench has no plot_reliability")
    return calibench


def test_plot_data_matches_numpy(cb):
    m = 15
    z, y = synthetic(3000, 10, 7)
    data = cb.plot_data(z, y, bins=m)
    assert data["bins"] == m and data["bin_rule"] == "right-closed" and data["title"] == "N = 3000, K = 10"
    (panel,) = data["panels"]
    p = softmax(z)
    conf, correct = p.max(axis=1), p.argmax(axis=1) == y
    want = reliability_bins(conf, correct, m)
    assert [b[0] for b in panel["reliability"]] == [b[0] for b in want]
    for got, exp in zip(panel["reliability"], want):
        if exp[0]:
            assert abs(got[1] - exp[1]) <= 1e-12 and abs(got[2] - exp[2]) <= 1e-12
        else:
            assert got[1] is None and got[2] is None
    assert abs(panel["ece"] - ece_of(want, 3000)) <= 1e-12
    assert panel["accuracy"] == pytest.approx(correct.mean(), abs=1e-15) and panel["n"] == 3000
    assert panel["r_auc"] == cb.evaluate(z, y, bins=m)["r_auc"]
    ret = retention_of(conf, correct)
    assert panel["retention"][0] is None
    assert np.allclose(panel["retention"][1:], ret[1:], rtol=0, atol=1e-15)
    assert panel["density"] == density_of(conf, correct)
    json.dumps(data, allow_nan=False)  # plain JSON, as the CLI writes it


def test_plot_data_probs_binary_and_the_script(cb, tmp_path):
    z, y = synthetic(500, 4, 3)
    p = softmax(z)
    a, b = cb.plot_data(z, y, bins=10), cb.plot_data(p, y, bins=10, probs=True, title="probs")
    assert a["panels"][0]["density"] == b["panels"][0]["density"]
    assert b["title"] == "probs"
    binary = cb.plot_data(z[:, 1] - z[:, 0], (y == 1).astype(int), bins=10)
    assert binary["title"] == "N = 500, K = 2"
    both = copy.deepcopy(a)
    both["panels"] += binary["panels"]
    out = tmp_path / "api.png"
    ok(run_script(write(tmp_path, both), out, "--kind", "density"))  # the API's dict is valid script input


def test_plot_reliability_compare_and_path(cb, tmp_path):
    import matplotlib.pyplot as plt

    z, y = synthetic(1200, 6, 5)
    cal = cb.fit("ts", z[:600], y[:600])
    fig = cb.plot_reliability(z[600:], y[600:], bins=12, compare=cal, path=tmp_path / "rel.png")
    assert (tmp_path / "rel.png").read_bytes().startswith(PNG_SIGNATURE)
    assert len(fig.axes) == 4  # 2 panels, each with its histogram
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("uncalibrated") and titles[1].startswith("ts (T = ")
    plt.close(fig)
    probs = cal.transform(z[600:])
    for compare, label in ((probs, "calibrated"), ((z[:600], y[:600]), "compare"),
                           (cb.plot_data(z[:600], y[:600], bins=12, label="val"), "val")):
        fig = cb.plot_reliability(z[600:], y[600:], bins=12, kind="retention", compare=compare)
        (ax,) = fig.axes
        assert [t.get_text().split(" (R-AUC")[0] for t in ax.get_legend().get_texts()] == ["uncalibrated", label]
        plt.close(fig)
    fig = cb.plot_reliability(z, y, kind="density", path=tmp_path / "d.svg")
    assert "<svg" in (tmp_path / "d.svg").read_text()
    plt.close(fig)


def test_plot_reliability_into_given_axes(cb):
    import matplotlib.pyplot as plt

    z, y = synthetic(800, 5, 9)
    backend = matplotlib.get_backend()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 4))
    assert cb.plot_reliability(z, y, ax=a) is fig
    assert len(a.patches) > 0 and a.get_title().startswith("uncalibrated")
    assert len(fig.axes) == 4  # a's histogram appended below it
    assert cb.plot_reliability(z, y, kind="retention", ax=b) is fig and len(b.lines) == 1
    assert cb.plot_reliability(z, y, kind="density", ax=[c]) is fig and len(c.patches) >= 2
    assert fig._suptitle is None  # the caller's figure keeps its own title
    assert matplotlib.get_backend() == backend
    with pytest.raises(ValueError, match="needs 2 Axes"):
        cb.plot_reliability(z, y, ax=a, compare=softmax(z))
    plt.close(fig)


def test_plot_reliability_errors(cb, tmp_path):
    z, y = synthetic(100, 3, 1)
    with pytest.raises(ValueError, match="kind"):
        cb.plot_reliability(z, y, kind="pie")
    with pytest.raises(ValueError, match="extension"):
        cb.plot_reliability(z, y, path=tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="tuple"):
        cb.plot_reliability(z, y, compare=(z, y, False, 1))
    with pytest.raises(ValueError, match="compare: a plot_data dict with bins = 10"):
        cb.plot_reliability(z, y, bins=15, compare=cb.plot_data(z, y, bins=10))
    bad = z.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"\[4, 1\]"):  # the engine's message
        cb.plot_data(bad, y)


def test_package_imports_without_matplotlib(cb, tmp_path):
    code = (
        "import numpy as np, calibench\n"
        "z = np.random.default_rng(0).normal(size=(50, 3)); y = np.arange(50) % 3\n"
        "assert calibench.plot_data(z, y)['panels'][0]['n'] == 50\n"
        "try:\n    calibench.plot_reliability(z, y)\nexcept ImportError as e:\n    print(e)\n"
    )
    path = os.pathsep.join([_hide_matplotlib(tmp_path)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == MISSING
