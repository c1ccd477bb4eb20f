"""`eval --plot`, `fit --plot` and `apply --plot`: the plot data the CLI computes (a .json
--plot writes it) against an independent numpy computation of the same definitions
(host/metrics/plot_data.hpp), and the figures python/calibench/plots.py draws from it."""

import json
import math
import pathlib

import numpy as np
import pytest


PNG = b"\x89PNG\r\n\x1a\n"


def write_dump(path, z_val, y_val, z_test, y_test):
    import h5py

    with h5py.File(path, "w") as f:
        for name, z, y in (("val", z_val, y_val), ("test", z_test, y_test)):
            f[f"{name}/logits"] = np.asarray(z, dtype=np.float32)
            f[f"{name}/labels"] = np.asarray(y, dtype=np.int32)


def reference_panel(z, y, bins):
    """The panel's numbers from the definitions, in float64 numpy."""
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1, keepdims=True)
    s = np.exp(z - m).sum(axis=1)
    conf = 1.0 / s
    pred = z.argmax(axis=1)
    correct = (pred == y).astype(np.float64)
    n = len(y)
    slot = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)  # right-closed, 0 in bin 0
    rel = []
    for b in range(bins):
        sel = slot == b
        rel.append([int(sel.sum()), correct[sel].mean() if sel.any() else None, conf[sel].mean() if sel.any() else None])
    order = sorted(range(n), key=lambda i: (-conf[i], i))
    retention = [None] + [correct[order[: (i * n + 99) // 100]].mean() for i in range(1, 101)]
    edges = np.arange(51) / 50.0
    hit = np.histogram(conf[correct == 1], bins=edges)[0]
    miss = np.histogram(conf[correct == 0], bins=edges)[0]
    return rel, retention, hit, miss, correct.mean(), conf


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    rng = np.random.default_rng(11)
    n, k = 900, 6
    z = rng.normal(size=(2 * n, k)) * 2.5
    y = np.where(rng.random(2 * n) < 0.6, z.argmax(axis=1), rng.integers(0, k, 2 * n))
    # Ties and confidences exactly on bin edges: rows of equal logits give confidence 1/K, and
    # two identical rows keep the retention order by index.
    z[:20] = 0.0
    z[20:40] = z[40:60]
    path = tmp_path_factory.mktemp("plot") / "d.h5"
    write_dump(path, z[:n], y[:n], z[n:], y[n:])
    return path, z[n:].astype(np.float32), y[n:]  # what the dump holds


@pytest.mark.parametrize("bins", [1, 6, 15])
def test_plot_data_matches_reference(calibench, dump, tmp_path, bins):
    path, z, y = dump
    out = tmp_path / "p.json"
    r = calibench("eval", path, "--split", "test", "--bins", bins, "--plot", out, "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["bins"] == bins and doc["bin_rule"] == "right-closed" and len(doc["panels"]) == 1
    p = doc["panels"][0]
    rel, retention, hit, miss, acc, conf = reference_panel(z, y, bins)
    assert p["n"] == len(y)
    assert [b[0] for b in p["reliability"]] == [b[0] for b in rel]
    for got, want in zip(p["reliability"], rel):
        for g, w in zip(got[1:], want[1:]):
            assert (g is None) == (w is None)
            if w is not None:
                assert g == pytest.approx(w, abs=1e-12)
    assert p["retention"][0] is None
    np.testing.assert_allclose(p["retention"][1:], retention[1:], rtol=0, atol=1e-15)
    assert p["density"]["correct"] == hit.tolist() and p["density"]["incorrect"] == miss.tolist()
    assert p["density"]["edges"] == [j / 50.0 for j in range(51)]
    assert p["accuracy"] == pytest.approx(acc, abs=1e-15)
    metrics = json.loads(r.stdout)
    assert p["ece"] == metrics["ece"] and p["r_auc"] == metrics["r_auc"]


def test_density_edges_are_left_closed(calibench, tmp_path):
    # Probabilities (float64) with top-label confidence exactly 0.7 = 35/50 (an edge: bin 35,
    # the edge as the double 35 / 50.0 equals 0.7), 0.98 = 49/50 and 1.0 (both the last bin).
    import h5py

    p = np.array([[0.7, 0.3], [0.02, 0.98], [1.0, 0.0]] * 4, dtype=np.float64)
    p[1::3] = [0.98, 0.02]
    y = np.array([0, 0, 1] * 4, dtype=np.int32)
    path = tmp_path / "e.h5"
    with h5py.File(path, "w") as f:
        for name in ("val", "test"):
            f[f"{name}/probs"] = p
            f[f"{name}/labels"] = y
    out = tmp_path / "e.json"
    r = calibench("eval", path, "--plot", out)
    assert r.returncode == 0, r.stderr
    panel = json.loads(out.read_text())["panels"][0]
    assert 35 / 50.0 == 0.7
    correct, incorrect = panel["density"]["correct"], panel["density"]["incorrect"]
    assert correct[35] == 4 and correct[49] == 4 and sum(correct) == 8  # 0.7 and 0.98 rows are correct
    assert incorrect[49] == 4 and sum(incorrect) == 4  # confidence 1.0, wrong label: the last bin
    want = np.histogram([0.7] * 4 + [0.98] * 4, bins=np.arange(51) / 50.0)[0]
    assert correct == want.tolist()


def test_fit_plot_has_before_and_after(calibench, dump, tmp_path):
    path, z, y = dump
    out = tmp_path / "f.json"
    r = calibench("fit", path, "--method", "ts", "--plot", out, "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    labels = [p["label"] for p in doc["panels"]]
    assert labels == ["uncalibrated", "ts"]
    fit = json.loads(r.stdout)
    assert doc["panels"][1]["ece"] == pytest.approx(fit["test"]["ece"], abs=1e-15)
    assert doc["panels"][0]["ece"] != doc["panels"][1]["ece"]


def matplotlib_or_skip():
    pytest.importorskip("matplotlib", reason="the figures need matplotlib for python3")


@pytest.mark.parametrize("kind", ["reliability", "retention", "density"])
def test_eval_writes_png(calibench, dump, tmp_path, kind):
    matplotlib_or_skip()
    path, _, _ = dump
    out = tmp_path / f"{kind}.png"
    r = calibench("eval", path, "--split", "test", "--plot", out, "--plot-kind", kind)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000


def test_fit_and_apply_write_svg(calibench, dump, tmp_path):
    matplotlib_or_skip()
    path, _, _ = dump
    saved = tmp_path / "cal.h5"
    r = calibench("fit", path, "--method", "hist", "--plot", tmp_path / "fit.svg", "--save", saved)
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / "fit.svg").read_text()
    assert "<svg" in svg and "uncalibrated" in svg and "hist" in svg
    r = calibench("apply", saved, path, "--plot", tmp_path / "apply.svg")
    assert r.returncode == 0, r.stderr
    assert "<svg" in (tmp_path / "apply.svg").read_text()


def test_bad_plot_requests(calibench, dump, tmp_path):
    path, _, _ = dump
    r = calibench("eval", path, "--plot", tmp_path / "x.txt")
    assert r.returncode == 2 and "expected a file name ending in .png, .svg, .pdf or .json" in r.stderr
    r = calibench("eval", path, "--plot", tmp_path / "x.png", "--plot-kind", "pie")
    assert r.returncode == 2 and "--plot-kind" in r.stderr
    r = calibench("eval", path, "--plot", tmp_path / "x.json", "--binning", "torchmetrics")
    assert r.returncode == 2 and "--plot draws right-closed, left-closed or guo-strict bins" in r.stderr
    assert not (tmp_path / "x.json").exists()
    r = calibench("eval", path, "--plot", tmp_path / "no" / "such" / "x.png")
    assert r.returncode != 0 and "calibench: error: --plot" in r.stderr


def test_plot_checked_before_the_fit(calibench, dump, tmp_path):
    """A --plot that cannot be drawn is refused before anything is read or fitted."""
    path, _, _ = dump
    save = tmp_path / "s.h5"
    r = calibench("fit", path, "--method", "ts", "--plot", tmp_path / "no" / "x.png", "--save", save)
    assert r.returncode == 2 and "folder" in r.stderr and "does not exist" in r.stderr, r.stderr
    assert r.stdout == "" and not save.exists()


def test_plot_paths_with_quotes_and_dashes(calibench, dump, tmp_path):
    path, _, _ = dump
    odd = tmp_path / "it's a \"dir\"; $(touch PWNED)"
    odd.mkdir()
    for name in ("-x.json", "a b'c.json"):
        r = calibench("eval", path, "--plot", odd / name)
        assert r.returncode == 0, r.stderr
        assert json.loads((odd / name).read_text())["panels"]
    assert not (tmp_path / "PWNED").exists() and not pathlib.Path("PWNED").exists()
    pytest.importorskip("matplotlib", reason="the figure needs matplotlib")
    r = calibench("eval", path, "--plot", odd / "-x.png")
    assert r.returncode == 0, r.stderr
    assert (odd / "-x.png").read_bytes().startswith(PNG)


def test_sweep_outputs_in_a_folder_with_quotes(calibench, dump, tmp_path):
    """The plot and report scripts get --out as one shell word, quotes and $(...) included."""
    path, _, _ = dump
    spec = tmp_path / "s.toml"
    spec.write_text(f'[[datasets]]\npath = "{path}"\n\n[[methods]]\nmethod = "ts"\n')
    out = tmp_path / "it's \"out\"; $(touch PWNED)"
    r = calibench("sweep", spec, "--out", out, "--no-plots")
    assert r.returncode == 0, r.stderr
    assert "Report: " in r.stdout and (out / "report.html").is_file(), r.stdout
    assert not (tmp_path / "PWNED").exists() and not pathlib.Path("PWNED").exists()
