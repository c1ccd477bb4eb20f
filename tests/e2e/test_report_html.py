# experiments/report_html.py: the one-page HTML report of a sweep.
#   Unit level, on a hand-made output folder: the Markdown subset, escaping (a `<script>` in a
#   dataset name), the failed-cells table, inline SVG with prefixed ids, the PNG fallback, "no
#   plots", the exit-2 errors.
#   Browser level, on a small real sweep (a spec with a cell that fails at fit time and a
#   `<script>` in its name): the page opened in headless Chromium, a screenshot that is not blank,
#   no console messages (Chromium 156 logs every console message, errors and Content-Security-Policy
#   violations included, as `[pid:tid:MMDD/HHMMSS.us:INFO:CONSOLE:LINE] "text", source: URL (LINE)`,
#   whatever its level: the page has no script, so any such line is a defect), and the parsed DOM.
#   The checks are themselves checked on pages made to fail them (a broken script, a blank page,
#   an external stylesheet).
# Skipped cleanly without chromium on PATH (browser tests) or without matplotlib (figure tests).
import importlib.util
import json
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import sys
import zlib

import pytest

from conftest import REPO, calibench_bin

SCRIPT = REPO / "experiments" / "report_html.py"
CHROMIUM = shutil.which("chromium")
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT_NAME = "<script>alert('x')</script>"
SCRIPT_STEM = "script_alert_x_script"  # plot_sweep.py's safe_name of SCRIPT_NAME

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH")


def report(out_dir, *args):
    return subprocess.run([sys.executable, str(SCRIPT), str(out_dir), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def ok(proc):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def png_bytes(width, height, rows):
    """A small RGB PNG: rows is a list of `height` bytes objects of 3 * width bytes."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\x00" + r for r in rows)
    return (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


TINY_SVG = """<?xml version="1.0" encoding="utf-8" standalone="no"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"
  "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="40pt" height="20pt" viewBox="0 0 40 20"
     xmlns="http://www.w3.org/2000/svg" version="1.1">
 <metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata>
 <defs><style type="text/css">*{stroke-linecap: butt}</style>
  <clipPath id="a"><rect x="0" y="0" width="40" height="20"/></clipPath>
  <path id="b" d="M 0 0 L 10 10"/></defs>
 <g id="patch_1" clip-path="url(#a)"><rect width="40" height="20" style="fill: #ff8800"/>
  <use xlink:href="#b" x="5" y="5" style="stroke: #000000"/></g>
</svg>
"""

TABLE_MD = f"""# Hand-made **study** `v1`

Test ECE %, a `code <span>` and a <br> break; raw <b>tags</b> & a lone ** stay text.

| dataset | uncal | TS |
|---|:---:|--:|
| {SCRIPT_NAME} | 12.34 (70.00) | **2.50 (70.00)** |
| other | failed | 3.25 (71.00) |

## Paired bootstrap comparisons

**{SCRIPT_NAME}**

| | uncal | TS |
|---|---|---|
| uncal | - | 0.00 |
| TS | 1.00 | - |
"""


def cell(dataset, label, method, seed=0, **extra):
    c = {"dataset": dataset, "label": label, "method": method, "seed": seed, "options": {},
         "id": f"{len(dataset) * 7919 + len(label):016x}", "file": "x.h5", "model": "m"}
    c.update(extra)
    return c


def page_of(out_dir, *args, out=None):
    """Runs the script (exit 0 asserted) and returns the written page."""
    proc = ok(report(out_dir, *args))
    path = pathlib.Path(out or out_dir / "report.html")
    assert proc.stdout.strip() == str(path)
    return path.read_text(encoding="utf-8")


def make_dir(root, plots=True):
    """A hand-made sweep output: three good cells, two failed, table.md, a tiny plots/."""
    root.mkdir(parents=True, exist_ok=True)
    cells = [cell(SCRIPT_NAME, "uncal", "uncalibrated", test={"ece": 0.12}),
             cell(SCRIPT_NAME, "TS", "ts", test={"ece": 0.025}),
             cell("other", "TS", "ts", test={"ece": 0.0325}),
             cell("other", "uncal", "uncalibrated", id="deadbeef00000001",
                  error="other.h5: /val/logits: <boom> & the fit failed"),
             cell("broken", "TS", "ts", seed=1, error="broken.h5: not an HDF5 file")]
    (root / "results.json").write_text(json.dumps(cells, indent=1))
    (root / "table.md").write_text(TABLE_MD)
    if plots:
        (root / "plots").mkdir()
        for kind in ("reliability", "objective"):  # two figures with the same ids: prefixes must differ
            (root / "plots" / f"{SCRIPT_STEM}-{kind}.svg").write_text(TINY_SVG)
        (root / "plots" / f"{SCRIPT_STEM}-retention.png").write_bytes(
            png_bytes(2, 2, [b"\xff\x00\x00\x00\xff\x00", b"\x00\x00\xff\xff\xff\xff"]))
    return root


def assert_self_contained(page):
    low = page.lower()
    assert "<script" not in low
    assert 'src="http' not in low and "src='http" not in low
    assert 'href="http' not in low and "href='http" not in low
    assert not re.search(r"<link[^>]*stylesheet", low)
    assert "@import" not in low and "@font-face" not in low


# ---------------------------------------------------------------- unit level

def test_hand_made_dir(tmp_path):
    out = make_dir(tmp_path / "run")
    page = page_of(out)
    assert page.startswith("<!DOCTYPE html>")
    assert_self_contained(page)
    # title, facts, Markdown subset
    assert "<h1>Hand-made <strong>study</strong> <code>v1</code></h1>" in page
    assert "<title>Hand-made study v1</title>" in page
    assert "5 cells" in page and "2 failed" in page and "3 datasets" in page and "2 methods" in page
    assert "UTC" in page
    assert "<code>code &lt;span&gt;</code>" in page and "a <br> break" in page
    assert "raw &lt;b&gt;tags&lt;/b&gt; &amp; a lone ** stay text" in page
    assert '<th style="text-align:center">uncal</th>' in page and '<th style="text-align:right">TS</th>' in page
    assert '<td style="text-align:center">12.34 (70.00)</td>' in page
    assert '<td style="text-align:right"><strong>2.50 (70.00)</strong></td>' in page
    assert "<h2>Paired bootstrap comparisons</h2>" in page
    # the <script> of the dataset name is text everywhere
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    assert page.count(escaped) >= 4  # facts, main table, comparisons, figures, failed cells
    # the failed cell
    failed = page[page.index("<h2>Failed cells</h2>"):]
    assert "other.h5: /val/logits: &lt;boom&gt; &amp; the fit failed" in failed
    assert "deadbeef00000001" in failed and "<td>uncal</td>" in failed and "<td>0</td>" in failed
    assert "<td>broken</td><td>TS</td><td>1</td>" in failed and "broken.h5: not an HDF5 file" in failed
    assert "<p>none</p>" not in failed
    assert "no plots: every cell of broken failed" in page


def test_figures_inline_with_prefixed_ids(tmp_path):
    out = make_dir(tmp_path / "run")
    page = page_of(out)
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page and "<metadata" not in page
    assert page.count("<svg") == 2
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), f"duplicate ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    assert 'id="a"' not in page and 'id="b"' not in page and 'id="patch_1"' not in page
    clips = re.findall(r'<clipPath id="(fig\d+-)a"', page)
    assert len(clips) == 2 and clips[0] != clips[1]
    for p in clips:
        assert f'clip-path="url(#{p}a)"' in page
        assert f'xlink:href="#{p}b"' in page
        assert f"#{p}svg *{{stroke-linecap: butt}}" in page  # the figure's CSS scoped to it
    assert "url(#a)" not in page and 'href="#b"' not in page
    assert page.count('src="data:image/png;base64,') == 1  # the PNG-only retention figure
    assert page.count("<figcaption>") == 3
    assert "reliability" in page and "retention" in page and "objective" in page


def test_no_plots_folder(tmp_path):
    out = make_dir(tmp_path / "run", plots=False)
    page = page_of(out, "--out", tmp_path / "r.html", out=tmp_path / "r.html")
    assert "no plots:" in page and "<svg" not in page
    assert not (out / "report.html").exists()


def test_no_failed_cells_says_none(tmp_path):
    out = make_dir(tmp_path / "run")
    cells = [c for c in json.loads((out / "results.json").read_text()) if "error" not in c]
    (out / "results.json").write_text(json.dumps(cells))
    page = page_of(out)
    assert "<h2>Failed cells</h2>\n<p>none</p>" in page
    assert "0 failed" in page


@pytest.mark.parametrize("case, needle", [
    ("no results.json", "results.json: no such file"),
    ("invalid results.json", "results.json: not valid JSON"),
    ("results.json not a list", "expected a JSON array"),
    ("no table.md", "table.md: no such file"),
    ("table.md without title", "no `# ` title"),
    ("table without alignment row", "alignment row"),
    ("ragged table", "a row of 1 cells"),
])
def test_bad_input_exit_2(tmp_path, case, needle):
    out = make_dir(tmp_path / "run")
    if case == "no results.json":
        (out / "results.json").unlink()
    elif case == "invalid results.json":
        (out / "results.json").write_text("[{")
    elif case == "results.json not a list":
        (out / "results.json").write_text('{"cells": []}')
    elif case == "no table.md":
        (out / "table.md").unlink()
    elif case == "table.md without title":
        (out / "table.md").write_text("no title\n")
    elif case == "table without alignment row":
        (out / "table.md").write_text("# t\n\n| a | b |\n| c | d |\n")
    else:
        (out / "table.md").write_text("# t\n\n| a | b |\n|---|---|\n| c |\n")
    proc = report(out)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("report_html: error: ") and needle in lines[0], lines
    assert proc.stdout == "" and not (out / "report.html").exists()


# ---------------------------------------------------------------- browser level

SPEC = r"""
name = "report test <script>throw new Error(\"unescaped spec name\")</script> & <b>tags</b>"
bins = 10
seeds = [0]
bootstrap = 50

[[datasets]]
synth = { name = "small", classes = 5, n_val = 400, n_test = 400, seed = 1 }

[[datasets]]   # one validation row: venn_abers fails at fit time (one class among the labels)
synth = { name = "tiny", classes = 3, n_val = 1, n_test = 50, seed = 2 }

[[methods]]
method = "uncalibrated"

[[methods]]
label = "TS-{objective}"
method = "ts"
objective = "ece"

[[methods]]
method = "cts_greedy"
iterations = 1

[[methods]]
method = "venn_abers"
"""


def run_chromium(tmp, *args, timeout=60):
    """Runs headless Chromium; (returncode, stdout, stderr). Killed (its process group) on timeout."""
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"chromium did not finish in {timeout} s: {' '.join(cmd)}\n{err[-3000:]}")
    return proc.returncode, out, err


def screenshot(tmp, page, png, size="1280,4000"):
    rc, _, err = run_chromium(tmp, f"--screenshot={png}", f"--window-size={size}", page.as_uri())
    assert rc == 0, f"chromium exit {rc}\n{err[-3000:]}"
    assert png.is_file(), f"no screenshot at {png}\n{err[-3000:]}"
    return err


def console_errors(stderr):
    """Chromium's console lines (`...:INFO:CONSOLE:12] "msg", source: URL (12)`; every level is
    logged as INFO in Chromium 156) and any "Uncaught": all of them errors on a page without script."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def png_info(path):
    """(width, height, blank): blank when every pixel may be one colour. Decoded with zlib only:
    for a one-colour image every filtered row (any of the five PNG filters) repeats its first
    pixel's bytes after that pixel, so one row that does not proves two colours."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        header = struct.unpack(">IIBBBBB", body) if kind == b"IHDR" else header
        idat += [body] if kind == b"IDAT" else []
        pos += 12 + n
    width, height, depth, colour, _, _, interlace = header
    assert depth in (8, 16) and interlace == 0, header
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour] * depth // 8
    raw, stride = zlib.decompress(b"".join(idat)), 1 + width * bpp
    assert len(raw) == stride * height
    for y in range(height):
        row = raw[y * stride + 1:(y + 1) * stride]
        if row[bpp:] != row[bpp:2 * bpp] * (width - 1):
            return width, height, False
    return width, height, True


def keep_artifact(path, name):
    """Copies a file to $CALIBENCH_TEST_ARTIFACTS (when set); prints where it is."""
    print(f"report_html test artifact: {path}")
    target = os.environ.get("CALIBENCH_TEST_ARTIFACTS")
    if target:
        os.makedirs(target, exist_ok=True)
        shutil.copyfile(path, os.path.join(target, name))
        print(f"report_html test artifact: {os.path.join(target, name)}")


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory):
    """A small real sweep (one failed cell) and its report.html."""
    root = tmp_path_factory.mktemp("report_sweep")
    (root / "spec.toml").write_text(SPEC)
    proc = subprocess.run([calibench_bin(), "sweep", root / "spec.toml", "--out", root / "out"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 3, f"rc={proc.returncode} (expected 3: one failed cell)\n{proc.stderr}"
    ok(report(root / "out"))
    return root / "out" / "report.html"


def test_sweep_report_content(sweep_report):
    page = sweep_report.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert "&lt;script&gt;throw new Error(&quot;unescaped spec name&quot;)&lt;/script&gt;" in page
    assert "&lt;b&gt;tags&lt;/b&gt;" in page
    assert "8 cells" in page and "1 failed" in page
    assert "<h2>Paired bootstrap comparisons</h2>" in page
    failed = page[page.index("<h2>Failed cells</h2>"):]
    assert "venn_abers needs at least two classes" in failed and "<td>tiny</td>" in failed


@needs_chromium
def test_report_in_chromium(sweep_report, tmp_path):
    png = tmp_path / "report-screenshot.png"
    err = screenshot(tmp_path, sweep_report, png)
    assert not console_errors(err), "console messages:\n" + "\n".join(console_errors(err))
    width, height, blank = png_info(png)
    assert (width, height) == (1280, 4000)
    assert not blank, f"{png} is one colour"
    assert png.stat().st_size > 20_000, f"{png}: {png.stat().st_size} bytes"
    keep_artifact(png, "report_html-screenshot.png")
    keep_artifact(sweep_report, "report_html-report.html")


@needs_chromium
def test_report_dom_in_chromium(sweep_report, tmp_path):
    rc, dom, err = run_chromium(tmp_path, "--dump-dom", sweep_report.as_uri())
    assert rc == 0, err[-3000:]
    assert not console_errors(err), "\n".join(console_errors(err))
    assert "<h1>report test &lt;script&gt;" in dom
    assert "<script" not in dom.lower()  # the escaped spec name made no element
    assert "<h2>Failed cells</h2>" in dom and "venn_abers needs at least two classes" in dom
    assert dom.count("<table") >= 4  # main table, two comparison tables, failed cells


@needs_chromium
def test_report_figures_in_chromium(sweep_report, tmp_path):
    if not HAVE_MATPLOTLIB:
        pytest.skip("matplotlib is not installed: the sweep writes no plots")
    svgs = sorted(p.name for p in (sweep_report.parent / "plots").glob("*.svg"))
    assert "small-class-temperatures.svg" in svgs and "small-objective.svg" in svgs, svgs
    rc, dom, err = run_chromium(tmp_path, "--dump-dom", sweep_report.as_uri())
    assert rc == 0, err[-3000:]
    assert dom.count("<svg") == len(svgs) and dom.count("<figcaption>") == len(svgs)
    ids = re.findall(r'\bid="([^"]+)"', dom)
    assert len(ids) == len(set(ids)), "duplicate ids in the DOM"
    refs = set(re.findall(r'(?:url\(|href=")#([^)"]+)', dom))
    assert refs and refs <= set(ids), f"dangling references: {sorted(refs - set(ids))[:5]}"


# ---------------------------------------------------------------- the checks can fail

@needs_chromium
def test_console_check_catches_a_broken_script(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>b</title></head><body>\n'
                    "<h1>a page with a broken script</h1>\n<script>\nnoSuchFunction();\n</script>\n"
                    "</body></html>\n")
    err = screenshot(tmp_path, page, tmp_path / "broken.png", "400,300")
    errors = console_errors(err)
    assert any("Uncaught ReferenceError: noSuchFunction is not defined" in e for e in errors), err[-3000:]
    assert not png_info(tmp_path / "broken.png")[2]  # text on white: not blank


@needs_chromium
def test_console_check_catches_an_external_stylesheet(sweep_report, tmp_path):
    page = tmp_path / "external.html"
    text = sweep_report.read_text(encoding="utf-8")
    page.write_text(text.replace("</head>", '<link rel="stylesheet" href="http://example.invalid/x.css">'
                                 "\n</head>", 1), encoding="utf-8")
    rc, _, err = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    assert rc == 0
    assert any("Content Security Policy" in e for e in console_errors(err)), err[-3000:]


@needs_chromium
def test_blank_check_catches_a_blank_page(tmp_path):
    page = tmp_path / "blank.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>blank</title></head>'
                    '<body style="background:#fff"></body></html>\n')
    err = screenshot(tmp_path, page, tmp_path / "blank.png", "400,300")
    assert not console_errors(err), "\n".join(console_errors(err))
    assert png_info(tmp_path / "blank.png") == (400, 300, True)
