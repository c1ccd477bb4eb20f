#!/usr/bin/env python3
"""One self-contained HTML page of a `calibench sweep` study:
python3 experiments/report_html.py DIR [--out DIR/report.html]

Reads DIR/results.json and DIR/table.md (written by `calibench sweep SPEC.toml --out DIR`) and the
figures of DIR/plots (written by experiments/plot_sweep.py), and writes ONE HTML5 file that needs
nothing else: no <script>, no external file, font, stylesheet or image. The CSS is inline in a
<style> element, and a Content-Security-Policy meta element (default-src 'none', inline styles and
data: images only) makes the browser refuse anything else. The page holds, in order:

  * the title: the first `# ` heading of table.md;
  * the run facts: cells, failed cells, datasets, methods, the generation time (UTC; the
    SOURCE_DATE_EPOCH environment variable fixes it) and the calibench commit when the cells carry
    one (a "calibench_commit", "commit" or "git_commit" key);
  * table.md converted to HTML: the main table, the paired bootstrap comparisons or the
    segmentation tables, and whatever else it holds. The converter takes a strict Markdown subset:
    `#`..`######` headings, paragraphs, pipe tables with an alignment row (`\\|` is a literal pipe
    in a cell), **bold**, `code` and <br>; every other character is escaped (html.escape), so raw
    HTML in a name comes out as text;
  * one section per dataset with its figures (reliability, retention, objective, class
    temperatures; a caption each): the SVG of DIR/plots inline (XML prolog, DOCTYPE, metadata,
    scripts and event attributes removed; every id, url(#...) and href="#..." prefixed per figure,
    since matplotlib repeats ids such as "patch_1"; the figure's own CSS scoped to it), or, where
    only the PNG exists, the PNG as a base64 data: URI. File names follow plot_sweep.py's
    sanitised stems. Without DIR/plots, or for a dataset without figures (every cell failed, or
    a segmentation output), the page says "no plots: ..." and why;
  * "Failed cells": a table of dataset, method label, seed, id and error message, or "none".

Prints the written path on stdout. Exit status: 0 on success; 2 for a missing or invalid
results.json or table.md, a bad argument or an unwritable output (one line `report_html: error: ...`
on stderr). Standard library only.
"""

import argparse
import base64
import datetime
import html
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

PROG = "report_html"
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMMIT_KEYS = ("calibench_commit", "commit", "git_commit")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
FIGURES = (
    ("reliability", "Reliability diagrams of every method on the test split: accuracy per confidence "
                    "bin, the gap to the mean confidence shaded, the diagonal, the share of samples per "
                    "bin below; the test ECE in each panel's title."),
    ("retention", "Accuracy versus retention fraction (the most confident samples kept) of every method; "
                  "R-AUC in the legend."),
    ("objective", "The validation objective over the fit's grid of the grid-fitted methods "
                  "(temperatures and weights in separate panels), the chosen candidate marked."),
    ("class-temperatures", "Each class's fitted temperature versus its validation accuracy (class-based "
                           "temperature scaling); the initial single temperature as a horizontal line."),
)
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#1a1a1a;background:#fff;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.3em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
.facts{color:#444;font-size:.95em}.facts span{margin-right:1.2em;white-space:nowrap}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #c8c8c8;padding:.25em .55em;vertical-align:top}
th{background:#f0f0f0}tbody tr:nth-child(even){background:#fafafa}
code{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;background:#f3f3f3;padding:0 .2em;
border-radius:3px;font-size:.92em}
.scroll{overflow-x:auto}figure{margin:1.2em 0;padding:.5em;border:1px solid #e2e2e2}
figure svg,figure img{display:block;max-width:100%;height:auto}
figcaption{font-size:.9em;color:#333;margin-top:.4em}
.note{color:#6a4b00;background:#fff8e1;padding:.3em .6em;border-left:3px solid #e0b000}
.failed td.error{color:#a00000;white-space:pre-wrap}
"""


class ReportError(Exception):
    """A problem with the input, the arguments or the output: exit 2 with one line."""


def fail(message):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the usage too)
        fail(message.replace("\n", " "))


def parse_args(argv):
    p = Parser(prog=PROG, description="One self-contained HTML page of a calibench sweep's output.")
    p.add_argument("dir", metavar="DIR", help="output folder of `calibench sweep`")
    p.add_argument("--out", default=None, help="the HTML file to write (default: DIR/report.html)")
    return p.parse_args(argv)


def esc(value):
    return html.escape(str(value), quote=True)


def first_line(e):
    text = str(e)
    return text.splitlines()[0] if text else type(e).__name__


# ---------------------------------------------------------------- input

def load_cells(path):
    """Every cell of results.json (failed ones included); ReportError when missing or invalid."""
    if not os.path.isfile(path):
        raise ReportError(f"{path}: no such file (run `calibench sweep SPEC --out DIR` first)")
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ReportError(f"{path}: not valid JSON ({first_line(e)})")
    if not isinstance(data, list):
        raise ReportError(f"{path}: expected a JSON array of cells, found {type(data).__name__}")
    for i, c in enumerate(data):
        if not isinstance(c, dict):
            raise ReportError(f"{path}: cell {i} is not an object")
        for key in ("dataset", "method"):
            if not isinstance(c.get(key), str):
                raise ReportError(f"{path}: cell {i} has no string '{key}'")
        if not isinstance(c.get("label", ""), str):
            raise ReportError(f"{path}: cell {i}: 'label' is not a string")
    return data


def load_table(path):
    """The text of table.md; ReportError when missing, not UTF-8 or without a `# ` title."""
    if not os.path.isfile(path):
        raise ReportError(f"{path}: no such file (run `calibench sweep SPEC --out DIR` first)")
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot read as UTF-8 text ({first_line(e)})")
    if not any(re.match(r"# \S", line) for line in text.splitlines()):
        raise ReportError(f"{path}: no `# ` title heading")
    return text


def is_failed(cell):
    return cell.get("error") not in (None, "")


def label_of(cell):
    return cell.get("label") or cell["method"]


def ordered_unique(items):
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


# ---------------------------------------------------------------- Markdown subset

INLINE = re.compile(r"(`[^`\n]*`)|(\*\*)|(<br\s*/?>)", re.IGNORECASE)


def inline(text):
    """**bold**, `code` and <br> of one span of text; everything else escaped."""
    tokens = []  # (kind, value): text, code, bold, br
    pos = 0
    for m in INLINE.finditer(text):
        if m.start() > pos:
            tokens.append(("text", text[pos:m.start()]))
        kind = "code" if m.group(1) else "bold" if m.group(2) else "br"
        tokens.append((kind, m.group(0)))
        pos = m.end()
    if pos < len(text):
        tokens.append(("text", text[pos:]))
    bolds = sum(1 for k, _ in tokens if k == "bold")
    usable = bolds - bolds % 2  # an unpaired last ** stays literal
    out, seen, open_ = [], 0, False
    for kind, value in tokens:
        if kind == "code":
            out.append(f"<code>{esc(value[1:-1])}</code>")
        elif kind == "br":
            out.append("<br>")
        elif kind == "bold" and seen < usable:
            seen += 1
            out.append("</strong>" if open_ else "<strong>")
            open_ = not open_
        else:
            out.append(esc(value))
    return "".join(out)


def plain(text):
    """Text of an inline span without its markup (for <title>)."""
    return re.sub(r"<br\s*/?>", " ", text.replace("**", "").replace("`", ""), flags=re.IGNORECASE)


def split_row(line):
    """Cells of a pipe-table row: outer pipes dropped, `\\|` a literal pipe, cells stripped."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    cells = re.split(r"(?<!\\)\|", body)
    return [c.strip().replace("\\|", "|") for c in cells]


def alignments(cells, lineno):
    """The text-align of each column from a pipe table's alignment row; ReportError when invalid."""
    out = []
    for c in cells:
        if not re.fullmatch(r":?-+:?", c):
            raise ReportError(f"line {lineno}: a pipe table needs an alignment row (|---|:--:|), "
                              f"found '{c}'")
        left, right = c.startswith(":"), c.endswith(":")
        out.append("center" if left and right else "right" if right else "left" if left else "")
    return out


def table_html(rows, first_lineno):
    """A pipe table (header, alignment row, body rows: lists of lines) as an HTML table."""
    header = split_row(rows[0])
    if len(rows) < 2:
        raise ReportError(f"line {first_lineno}: a pipe table needs an alignment row (|---|)")
    align = alignments(split_row(rows[1]), first_lineno + 1)
    if len(align) != len(header):
        raise ReportError(f"line {first_lineno + 1}: the alignment row has {len(align)} "
                          f"columns, the header {len(header)}")

    def row(cells, tag):
        parts = []
        for c, a in zip(cells, align):
            style = f' style="text-align:{a}"' if a else ""
            parts.append(f"<{tag}{style}>{inline(c)}</{tag}>")
        return "<tr>" + "".join(parts) + "</tr>"

    body = []
    for i, line in enumerate(rows[2:]):
        cells = split_row(line)
        if len(cells) != len(header):
            raise ReportError(f"line {first_lineno + 2 + i}: a row of {len(cells)} cells, the "
                              f"header has {len(header)}")
        body.append(row(cells, "td"))
    return ('<div class="scroll"><table>\n<thead>' + row(header, "th") + "</thead>\n<tbody>\n"
            + "\n".join(body) + "\n</tbody></table></div>")


def blocks(text):
    """table.md as (kind, lines, first line number) blocks: heading, table, paragraph."""
    out, current = [], None
    for n, line in enumerate(text.splitlines(), 1):
        kind = ("blank" if not line.strip() else "heading" if re.match(r"#{1,6} ", line)
                else "table" if line.lstrip().startswith("|") else "paragraph")
        if kind == "blank":
            current = None
        elif kind == "heading":
            out.append(("heading", [line], n))
            current = None
        elif current is not None and current[0] == kind:
            current[1].append(line)
        else:
            current = (kind, [line], n)
            out.append(current)
    return out


def markdown(text):
    """(title, HTML body) of table.md: the first H1 is the title, the rest converted in order."""
    title, parts = None, []
    for kind, lines, n in blocks(text):
        if kind == "heading":
            m = re.match(r"(#{1,6}) (.*)", lines[0])
            level, content = len(m.group(1)), m.group(2).strip().rstrip("#").rstrip()
            if level == 1 and title is None:
                title = content
                continue
            level = max(level, 2)  # the page has one h1
            parts.append(f"<h{level}>{inline(content)}</h{level}>")
        elif kind == "table":
            parts.append(table_html(lines, n))
        else:
            parts.append("<p>" + "\n".join(inline(line.strip()) for line in lines) + "</p>")
    return title, "\n".join(parts)


# ---------------------------------------------------------------- figures

# The plot files' stems are plot_sweep.py's own (the same folder; standard library only).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_sweep import file_stems  # noqa: E402


def local(tag):
    return tag.rsplit("}", 1)[-1]


def prefix_refs(value, prefix):
    """url(#x) -> url(#PREFIXx) in an attribute value or a style sheet."""
    return re.sub(r"url\(\s*(['\"]?)#", lambda m: f"url({m.group(1)}#{prefix}", value)


def scope_css(css, root_id, prefix):
    """Every selector of an SVG's style sheet limited to the figure (`*{}` -> `#root *{}`)."""
    if "@" in css or re.search(r"url\(\s*['\"]?(?!#)", css):
        return ""  # at-rules or external URLs: not needed by matplotlib's figures, dropped
    def rule(m):
        sels = ", ".join(f"#{root_id} {s.strip()}" for s in m.group(1).split(",") if s.strip())
        return f"{sels}{{{m.group(2)}}}"
    return re.sub(r"([^{}]+)\{([^{}]*)\}", rule, prefix_refs(css, prefix))


def clean_attrs(el, prefix):
    """Prefixes ids and internal references; drops event handlers and external links."""
    for name in list(el.attrib):
        value, short = el.attrib[name], local(name)
        if short.lower().startswith("on"):
            del el.attrib[name]
        elif short == "id":
            el.attrib[name] = prefix + value
        elif short == "href":
            if value.startswith("#"):
                el.attrib[name] = "#" + prefix + value[1:]
            elif not value.startswith("data:image/"):
                del el.attrib[name]
        else:
            el.attrib[name] = prefix_refs(value, prefix)


def drop_unsafe(root):
    """Removes script, foreignObject and metadata elements from an SVG tree."""
    for parent in list(root.iter()):
        for child in list(parent):
            if local(child.tag) in ("script", "foreignObject", "metadata"):
                parent.remove(child)


def inline_svg(text, index):
    """An SVG file's text as an inline <svg> element with ids prefixed `figN-`; None when invalid."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    try:
        root = ET.fromstring(text.encode("utf-8"))  # drops the XML prolog and the DOCTYPE
    except ET.ParseError:
        return None
    if local(root.tag) != "svg":
        return None
    drop_unsafe(root)
    prefix = f"fig{index}-"
    for el in root.iter():
        clean_attrs(el, prefix)
        if local(el.tag) == "style" and el.text:
            el.text = scope_css(el.text, prefix + "svg", prefix)
    root.set("id", prefix + "svg")
    root.set("role", "img")
    return ET.tostring(root, encoding="unicode")


def figure_body(plots, stem, kind, index, alt):
    """The inline SVG or <img> of one figure, or None when neither file is there (or usable)."""
    svg_path = os.path.join(plots, f"{stem}-{kind}.svg")
    if os.path.isfile(svg_path):
        try:
            with open(svg_path, encoding="utf-8") as f:
                svg = inline_svg(f.read(), index)
        except (OSError, UnicodeDecodeError):
            svg = None
        if svg is not None:
            return svg
    png_path = os.path.join(plots, f"{stem}-{kind}.png")
    if os.path.isfile(png_path):
        try:
            with open(png_path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if data.startswith(PNG_SIGNATURE):
            b64 = base64.b64encode(data).decode("ascii")
            return f'<img alt="{esc(alt)}" src="data:image/png;base64,{b64}">'
    return None


def dataset_section(dataset, stem, plots, seed, counter):
    """One dataset's section: its figures with captions, or a note that it has none."""
    parts = [f"<section>\n<h3>{esc(dataset)}</h3>"]
    found = 0
    for kind, caption in FIGURES:
        counter[0] += 1
        body = figure_body(plots, stem, kind, counter[0], f"{dataset}: {kind}")
        if body is None:
            continue
        found += 1
        seed_text = f" Seed {esc(seed)}." if seed is not None else ""
        parts.append(f"<figure>\n{body}\n<figcaption><strong>{esc(dataset)}, {esc(kind)}.</strong> "
                     f"{esc(caption)}{seed_text} File: <code>{esc(stem)}-{esc(kind)}</code>."
                     f"</figcaption>\n</figure>")
    if not found:
        parts.append(f'<p class="note">no plots: {esc(os.path.basename(plots))}/ holds no figure for '
                     f"{esc(dataset)} (stem <code>{esc(stem)}</code>; plots.log may say why).</p>")
    parts.append("</section>")
    return "\n".join(parts)


def figures_html(out_dir, cells):
    """The figures section: one section per dataset with a successful cell."""
    plots = os.path.join(out_dir, "plots")
    parts = ["<h2>Figures</h2>"]
    ok = [c for c in cells if not is_failed(c)]
    if not os.path.isdir(plots):
        parts.append('<p class="note">no plots: the output folder has no plots/ (the sweep ran with '
                     "--no-plots or without matplotlib; experiments/plot_sweep.py DIR writes them).</p>")
        return "\n".join(parts)
    seeds = sorted({c["seed"] for c in ok if isinstance(c.get("seed"), int)})
    seed = seeds[0] if seeds else None  # plot_sweep.py's default seed
    stems = file_stems(ordered_unique(c["dataset"] for c in ok))  # plot_sweep.py's stems
    counter = [0]
    for d in ordered_unique(c["dataset"] for c in cells):
        if d in stems:
            parts.append(dataset_section(d, stems[d], plots, seed, counter))
        else:
            parts.append(f'<section>\n<h3>{esc(d)}</h3>\n<p class="note">no plots: every cell of '
                         f"{esc(d)} failed (see Failed cells).</p>\n</section>")
    return "\n".join(parts)


# ---------------------------------------------------------------- page

def generated_at():
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch.isdigit()
            else datetime.datetime.now(datetime.timezone.utc))
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def facts_html(cells):
    """The line of run facts."""
    datasets = ordered_unique(c["dataset"] for c in cells)
    methods = ordered_unique(label_of(c) for c in cells)
    commits = ordered_unique(str(c[k]) for c in cells for k in COMMIT_KEYS if c.get(k) not in (None, ""))
    failed = sum(1 for c in cells if is_failed(c))
    items = [count(len(cells), "cell"), f"{failed} failed",
             f"{count(len(datasets), 'dataset')}: {', '.join(datasets)}",
             f"{count(len(methods), 'method')}: {', '.join(methods)}",
             f"generated {generated_at()}"]
    if commits:
        items.append(f"calibench commit {', '.join(commits)}")
    return '<p class="facts">' + "".join(f"<span>{esc(i)}</span>" for i in items) + "</p>"


def failed_html(cells):
    """The "Failed cells" section: a table, or "none"."""
    failed = [c for c in cells if is_failed(c)]
    parts = ["<h2>Failed cells</h2>"]
    if not failed:
        parts.append("<p>none</p>")
        return "\n".join(parts)
    rows = ["<tr><th>dataset</th><th>method label</th><th>seed</th><th>id</th><th>error</th></tr>"]
    for c in failed:
        values = [c["dataset"], label_of(c), c.get("seed", ""), c.get("id", "")]
        rows.append("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in values)
                    + f'<td class="error">{esc(c["error"])}</td></tr>')
    parts.append(f'<p>{len(failed)} of {len(cells)} cells failed.</p>')
    parts.append('<div class="scroll"><table class="failed">\n' + "\n".join(rows) + "\n</table></div>")
    return "\n".join(parts)


def build_page(out_dir, cells, title, tables):
    """The whole HTML document around table.md's title and converted body."""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(plain(title))}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{inline(title)}</h1>",
        facts_html(cells),
        "<h2>Tables</h2>",
        tables,
        figures_html(out_dir, cells),
        failed_html(cells),
        "</body>",
        "</html>",
        "",
    ])


def write_atomically(path, text):
    temp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(temp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temp, path)
    except OSError as e:
        raise ReportError(f"cannot write {path}: {e.strerror or e}")
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = args.out or os.path.join(args.dir, "report.html")
    try:
        if not os.path.isdir(args.dir):
            raise ReportError(f"{args.dir}: no such folder")
        cells = load_cells(os.path.join(args.dir, "results.json"))
        table_path = os.path.join(args.dir, "table.md")
        try:
            title, tables = markdown(load_table(table_path))
        except ReportError as e:
            raise ReportError(str(e) if str(e).startswith(table_path) else f"{table_path}: {e}")
        write_atomically(out, build_page(args.dir, cells, title, tables))
    except ReportError as e:
        fail(str(e))
    print(out, flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
