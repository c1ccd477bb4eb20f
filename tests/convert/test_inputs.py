# Tests for python/calibench/inputs.py (read_lm_eval, read_table) and the converter's lm-eval, CSV
# and Parquet inputs: the fixtures of tests/fixtures/inputs (lm-evaluation-harness sample logs written
# as lm-eval writes them, one table in four layouts) convert into dumps holding exactly the files'
# numbers, which the CLI and calibench.evaluate read; malformed files give one line naming the file
# and the line or row. Run: pytest tests/convert/test_inputs.py
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CONVERT_DIR = REPO / "experiments" / "convert"
FIX = REPO / "tests" / "fixtures" / "inputs"
PREFIX = "calibench-convert: error: "
DATE = "2024-06-01T12-00-00.000000"
HELLASWAG = FIX / f"samples_hellaswag_{DATE}.jsonl"
ARC = FIX / f"samples_arc_easy_{DATE}.jsonl"
TEXTGOLD = FIX / f"samples_textgold_{DATE}.jsonl"
GSM8K = FIX / f"samples_gsm8k_{DATE}.jsonl"
TABLES = ["table_columns.csv", "table_list.csv", "table_columns.parquet", "table_list.parquet"]

sys.path.insert(0, str(CONVERT_DIR))
import calibench_convert  # noqa: E402

# The reader is loaded by path, as the converter loads it: it needs numpy only, not calibench._core.
_spec = importlib.util.spec_from_file_location("calibench_inputs_under_test",
                                               REPO / "python" / "calibench" / "inputs.py")
inputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(inputs)


def records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def expected_lm(path):
    """The fixture's numbers, read straight from the JSON: per-choice log-likelihoods and targets."""
    recs = records(path)
    lls = [[float(r[0]) for r in rec["filtered_resps"]] for rec in recs]
    return recs, lls, [int(rec["target"]) for rec in recs]


from convert_helpers import convert, convert_ok  # noqa: E402,F401  (shared by the converter suites)


def convert_fails(*args):
    status, out, err = convert(*args)
    assert status == 2, f"expected exit 2, got {status}: {out} {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), err
    return lines[0]


def read_h5(path):
    with h5py.File(path, "r") as f:
        data = {name: f[name][()] for name in ("val/logits", "val/labels", "test/logits", "test/labels")}
        for name in ("val/index", "test/index"):
            if name in f:
                data[name] = f[name][()]
        return data, dict(f.attrs)


def calibench_bin():
    path = os.environ.get("CALIBENCH_BIN", str(REPO / "build" / "calibench"))
    return path if os.access(path, os.X_OK) else None


def cli_eval(dump, split):
    exe = calibench_bin()
    if exe is None:
        pytest.skip("no calibench CLI (set CALIBENCH_BIN or build /work/main/build/calibench)")
    run = subprocess.run([exe, "eval", str(dump), "--split", split, "--format", "json"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def accuracy(z, y):
    return float(np.mean(np.argmax(z, axis=1) == y))


# ============================================================================ lm-eval: the reader


def test_hellaswag_values_are_the_logged_numbers():
    _, lls, targets = expected_lm(HELLASWAG)
    z, y, info = inputs.read_lm_eval(HELLASWAG)
    assert z.dtype == np.float64 and z.shape == (6, 4)
    np.testing.assert_array_equal(z, np.array(lls))  # exact: str(float) round-trips
    np.testing.assert_array_equal(y, targets)
    assert info["padded_rows"] == 0 and list(info["num_choices"]) == [4] * 6
    assert list(info["doc_id"]) == list(range(6)) and info["filter"] == ["none"]


def test_arc_varying_choices_padded_and_said():
    _, lls, targets = expected_lm(ARC)
    with pytest.warns(UserWarning, match="padded with -10000"):
        z, y, info = inputs.read_lm_eval(ARC)
    k = max(map(len, lls))
    assert z.shape == (6, k) == (6, 5)
    for n, row in enumerate(lls):
        np.testing.assert_array_equal(z[n, : len(row)], row)
        assert (z[n, len(row):] == inputs.PAD_VALUE).all()
    np.testing.assert_array_equal(info["num_choices"], [len(r) for r in lls])
    assert info["padded_rows"] == sum(len(r) < k for r in lls) == 5
    assert any("padded" in note for note in info["notes"])
    np.testing.assert_array_equal(y, targets)


def test_arc_pad_options():
    with pytest.warns(UserWarning):
        z, _, _ = inputs.read_lm_eval(ARC, pad_value=float("-inf"))
    assert np.isneginf(z[1, 3:]).all()
    with pytest.raises(inputs.InputError, match=r"line 1: has 4 choices where others have 5.*padding is off"):
        inputs.read_lm_eval(ARC, pad_value=None)
    with pytest.raises(inputs.InputError, match=r"line 1: log-likelihood .* not more than 746 above the padding "
                                                r"value -100"):
        inputs.read_lm_eval(ARC, pad_value=-100.0)


@pytest.mark.parametrize("path", [HELLASWAG, ARC])
def test_accuracies_match_the_logged_acc_and_acc_norm(path):
    recs = records(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arc's padding note
        z, y, _ = inputs.read_lm_eval(path)
        zn, _, _ = inputs.read_lm_eval(path, length_norm="chars")
    assert list((np.argmax(z, 1) == y).astype(float)) == [r["acc"] for r in recs]
    assert list((np.argmax(zn, 1) == y).astype(float)) == [r["acc_norm"] for r in recs]
    if path == HELLASWAG:
        assert any(r["acc"] != r["acc_norm"] for r in recs)  # a row where the normalisation matters


def test_length_norm_bytes_and_chars():
    recs, lls, _ = expected_lm(ARC)
    with pytest.warns(UserWarning):
        zc, _, _ = inputs.read_lm_eval(ARC, length_norm="chars")
        zb, _, _ = inputs.read_lm_eval(ARC, length_norm="bytes")
    for n, rec in enumerate(recs):
        choices = rec["doc"]["choices"]["text"]
        np.testing.assert_array_equal(zc[n, : len(choices)], np.array(lls[n]) / [len(c) for c in choices])
        np.testing.assert_array_equal(zb[n, : len(choices)], np.array(lls[n]) / [len(c.encode()) for c in choices])
    assert not np.array_equal(zc, zb)  # the choices hold non-ASCII letters


def test_text_target_mapped_through_the_choices():
    recs = records(TEXTGOLD)
    z, y, _ = inputs.read_lm_eval(TEXTGOLD)
    assert [rec["target"] for rec in recs] == ["B", "C", "D"]
    np.testing.assert_array_equal(y, [1, 2, 3])


def test_several_files_concatenated():
    with pytest.warns(UserWarning):
        z, y, info = inputs.read_lm_eval([HELLASWAG, ARC])
    assert z.shape == (12, 5) and (z[:6, 4] == inputs.PAD_VALUE).all()
    assert info["source"][0] == (str(HELLASWAG), 1) and info["source"][6] == (str(ARC), 1)


def test_generate_until_refused():
    with pytest.raises(inputs.InputError) as e:
        inputs.read_lm_eval(GSM8K)
    assert str(e.value).startswith(f"{GSM8K}: line 1: ") and "not a multiple-choice" in str(e.value)


def test_numbers_of_older_logs_and_mutual_info(tmp_path):
    rec = records(HELLASWAG)[0]
    lls = [float(r[0]) for r in rec["filtered_resps"]]
    old = dict(rec, target=int(rec["target"]), filtered_resps=[[ll, False] for ll in lls],
               arguments=[[a["arg_0"], a["arg_1"]] for a in rec["arguments"].values()])
    args = dict(rec["arguments"])
    for i, a in enumerate(list(rec["arguments"].values())):
        args[f"gen_args_{4 + i}"] = {"arg_0": "", "arg_1": a["arg_1"]}
    mutual = dict(rec, doc_id=1, arguments=args, filtered_resps=rec["filtered_resps"] + [["-1.0", "False"]] * 4)
    path = tmp_path / "samples_x.jsonl"
    path.write_text(json.dumps(old) + "\n" + json.dumps(mutual) + "\n", encoding="utf-8")
    z, y, info = inputs.read_lm_eval(path)
    np.testing.assert_array_equal(z, [lls, lls])
    assert info["mutual_info_rows"] == 1 and any("acc_mutual_info" in n for n in info["notes"])


# ============================================================================ lm-eval: the converter


def test_convert_arc_exact_and_evaluates(tmp_path):
    _, lls, targets = expected_lm(ARC)
    out = tmp_path / "arc.h5"
    _, err = convert_ok(ARC, "--split-seed", "0", "-o", out)
    assert "calibench-convert: note: 5 of 6 records have fewer than K = 5 choices" in err
    data, attrs = read_h5(out)
    assert attrs["num_classes"] == 5 and "padded with -10000" in attrs["source"]
    padded = np.full((6, 5), inputs.PAD_VALUE)
    for n, row in enumerate(lls):
        padded[n, : len(row)] = row
    for split in ("val", "test"):
        idx = data[f"{split}/index"]
        assert data[f"{split}/logits"].dtype == np.float64
        np.testing.assert_array_equal(data[f"{split}/logits"], padded[idx])
        np.testing.assert_array_equal(data[f"{split}/labels"], np.array(targets)[idx])
    got = cli_eval(out, "test")
    assert got["n"] == 3 and got["k"] == 5
    assert got["accuracy"] == accuracy(padded[data["test/index"]], np.array(targets)[data["test/index"]])


def test_convert_hellaswag_evaluate_in_python(tmp_path):
    out = tmp_path / "hs.h5"
    convert_ok(HELLASWAG, "--split-seed", "3", "--length-norm", "chars", "-o", out, "-q")
    data, attrs = read_h5(out)
    assert "divided by the choice length in chars" in attrs["source"]
    try:
        import calibench
        calibench.evaluate  # noqa: B018
    except (ImportError, AttributeError) as e:
        pytest.skip(f"calibench package does not import ({e})")
    got = calibench.evaluate(data["val/logits"], data["val/labels"])
    assert got["n"] == 3 and got["accuracy"] == accuracy(data["val/logits"], data["val/labels"])
    if calibench_bin():
        assert got == cli_eval(out, "val")  # the package and the CLI: the same engine, the same JSON


def test_convert_options(tmp_path):
    out = tmp_path / "x.h5"
    assert "must be finite" in convert_fails(ARC, "--split-seed", "0", "--pad-value=-inf", "-o", out)
    assert "padding is off" in convert_fails(ARC, "--split-seed", "0", "--no-pad", "-o", out)
    assert "--logit-columns does not apply to lm-eval input" in convert_fails(
        ARC, "--split-seed", "0", "--logit-columns", "a,b", "-o", out)
    assert "--length-norm does not apply to csv input" in convert_fails(
        FIX / "table_columns.csv", "--split-seed", "0", "--length-norm", "chars", "-o", out)
    (tmp_path / "y.p").write_bytes(b"\x80\x04N.")
    assert "--pad-value does not apply to pickle input" in convert_fails(tmp_path / "y.p", "--pad-value", "-5",
                                                                          "-o", out)
    assert "only for lm-eval" in convert_fails(ARC, FIX / "table_columns.csv", "--split-seed", "0", "-o", out)
    assert "--split-seed" in convert_fails(ARC, "-o", out)
    convert_ok(ARC, "--split-seed", "0", "--pad-value", "-2000", "-o", out)
    assert (read_h5(out)[0]["val/logits"].min()) == -2000


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _edit(line, fn):
    rec = json.loads(line)
    fn(rec)
    return json.dumps(rec, ensure_ascii=False) + "\n"


BAD_LM = {
    "missing field": (lambda ls: ls[:1] + [_edit(ls[1], lambda r: r.pop("filtered_resps"))] + ls[2:],
                      "line 2: has no 'filtered_resps' field"),
    "wrong number of choices": (lambda ls: ls[:2] + [_edit(ls[2], lambda r: r["filtered_resps"].pop())] + ls[3:],
                                "line 3: wrong number of choices: arguments has 4 requests but filtered_resps has 3"),
    "non-numeric": (lambda ls: [_edit(ls[0], lambda r: r["filtered_resps"][1].__setitem__(0, "abc"))] + ls[1:],
                    "line 1: filtered_resps[1][0] is 'abc', not a number"),
    "nan": (lambda ls: ls[:4] + [_edit(ls[4], lambda r: r["filtered_resps"][0].__setitem__(0, "nan"))],
            "line 5: filtered_resps[0][0] is 'nan', not a finite log-likelihood"),
    "label out of range": (lambda ls: ls[:3] + [_edit(ls[3], lambda r: r.__setitem__("target", "4"))] + ls[4:],
                           "line 4: target 4 outside the 4 choices [0, 4)"),
    "text target not a choice": (lambda ls: [_edit(ls[0], lambda r: r.__setitem__("target", "zebra"))],
                                 "line 1: target 'zebra' is neither a choice index nor one of the 4 choices"),
    "several gold": (lambda ls: [_edit(ls[0], lambda r: r.__setitem__("target", "[0, 2]"))],
                     "line 1: target '[0, 2]' names several gold choices"),
    "empty file": (lambda ls: [], "no samples (empty file)"),
    "truncated line": (lambda ls: ls[:-1] + [ls[-1][: len(ls[-1]) // 2]], "line 6: not valid JSON (truncated?)"),
    "not an object": (lambda ls: ls[:1] + ["[1, 2]\n"], "line 2: holds list, expected a JSON object"),
    "duplicate doc_id": (lambda ls: ls[:2] + [_edit(ls[2], lambda r: r.__setitem__("doc_id", 0))],
                         "line 3: doc_id 0 again (first at line 1)"),
    "several filters": (lambda ls: ls[:1] + [_edit(ls[0], lambda r: r.__setitem__("filter", "other"))],
                        "holds records of several filters ('none' (line 1), 'other' (line 2))"),
    "one choice": (lambda ls: [_edit(ls[0], lambda r: (r["filtered_resps"].__delitem__(slice(1, None)),
                                                       [r["arguments"].pop(f"gen_args_{i}") for i in (1, 2, 3)]))],
                   "line 1: has 1 choice; a multiple-choice sample needs at least 2"),
    "delimiter": (lambda ls: [_edit(ls[0], lambda r: r["arguments"]["gen_args_2"].__setitem__("arg_1", "x"))],
                  "line 1: a continuation does not start with the target delimiter ' '"),
}


@pytest.mark.parametrize("case", sorted(BAD_LM))
def test_malformed_lm_eval(tmp_path, case):
    make, message = BAD_LM[case]
    path = tmp_path / "samples_bad.jsonl"
    path.write_text("".join(make(_lines(HELLASWAG))), encoding="utf-8")
    out = tmp_path / "out.h5"
    line = convert_fails(path, "--split-seed", "0", "-o", out)
    assert line.startswith(f"{PREFIX}{path}: "), line
    assert message in line, line
    assert not out.exists()


def test_lm_filter_option(tmp_path):
    ls = _lines(HELLASWAG)
    path = tmp_path / "samples_two.jsonl"
    path.write_text("".join(ls + [_edit(line, lambda r: r.__setitem__("filter", "other")) for line in ls[:2]]),
                    encoding="utf-8")
    z, _, info = inputs.read_lm_eval(path, filter="other")
    assert z.shape == (2, 4) and info["filter"] == ["other"]
    assert "no records of filter 'x'" in convert_fails(path, "--lm-filter", "x", "--split-seed", "0",
                                                       "-o", tmp_path / "o.h5")


# ============================================================================ tables


def expected_table():
    """The numbers of table_columns.csv, parsed here independently of the reader."""
    lines = (FIX / "table_columns.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    return (np.array([[float(x) for x in r[2:5]] for r in rows]), np.array([int(r[5]) for r in rows]),
            np.array([r[1] for r in rows]))


@pytest.mark.parametrize("name", TABLES)
def test_table_reader(name):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    z, y, split = expected_table()
    v, labels, info = inputs.read_table(FIX / name, split_column="split")
    np.testing.assert_array_equal(v, z)
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_array_equal(info["split"], split)
    assert v[0, 1] == 0.1 + 0.2


def test_tables_give_identical_dumps(tmp_path):
    pytest.importorskip("pyarrow")
    z, y, split = expected_table()
    dumps = []
    for name in TABLES:
        out = tmp_path / (name.replace(".", "_") + ".h5")
        convert_ok(FIX / name, "--split-column", "split", "-o", out)
        dumps.append(read_h5(out)[0])
    for d in dumps[1:]:
        assert d.keys() == dumps[0].keys()
        for key in d:
            assert d[key].dtype == dumps[0][key].dtype
            np.testing.assert_array_equal(d[key], dumps[0][key])
    np.testing.assert_array_equal(dumps[0]["val/logits"], z[split == "val"])
    np.testing.assert_array_equal(dumps[0]["test/labels"], y[split == "test"])
    got = cli_eval(tmp_path / "table_list_parquet.h5", "val")
    assert got["n"] == 5 and got["accuracy"] == accuracy(z[split == "val"], y[split == "val"])


def test_table_options(tmp_path):
    z, y, _ = expected_table()
    out = tmp_path / "seed.h5"
    convert_ok(FIX / "table_columns.csv", "--split-seed", "0", "--logit-columns", "logit_0,logit_1,logit_2",
               "--label-column", "label", "-o", out)
    data, _ = read_h5(out)
    np.testing.assert_array_equal(data["val/logits"], z[data["val/index"]])
    v, _, _ = inputs.read_table(FIX / "table_columns.csv", logit_columns=["logit_2", "logit_0", "logit_1"])
    np.testing.assert_array_equal(v, z[:, [2, 0, 1]])
    v, _, info = inputs.read_table(FIX / "table_list.csv", list_column="logits")
    np.testing.assert_array_equal(v, z)
    assert info["split"] is None and "list column" in info["layout"]


def test_table_probs(tmp_path):
    p = np.array([[0.25, 0.75], [0.5, 0.5], [0.9, 0.1], [0.125, 0.875]])
    path = tmp_path / "p.csv"
    path.write_text("prob_0,prob_1,y\n" + "".join(f"{a!r},{b!r},{i % 2}\n" for i, (a, b) in enumerate(p.tolist())))
    out = tmp_path / "p.h5"
    convert_ok(path, "--split-seed", "0", "--probs", "-o", out)
    with h5py.File(out) as f:
        idx = f["val/index"][()]
        np.testing.assert_array_equal(f["val/probs"][()], p[idx])
    bad = tmp_path / "bad.csv"
    bad.write_text("prob_0,prob_1,y\n0.5,0.6,0\n0.5,0.5,1\n")
    assert "row sums to 1.1" in convert_fails(bad, "--split-seed", "0", "--probs", "-o", tmp_path / "bad.h5")


BAD_TABLE = {
    "non-numeric": ("logit_0,logit_1,label\n1.0,2.0,0\n1.5,abc,1\n",
                    "line 3, column 'logit_1': value 'abc' is not a number"),
    "empty cell": ("logit_0,logit_1,label\n1.0,,0\n", "line 2, column 'logit_1': value '' is not a number"),
    "label out of range": ("logit_0,logit_1,label\n1.0,2.0,0\n1.5,2.5,2\n",
                           "line 3, column 'label': label 2 outside [0, 2)"),
    "fractional label": ("logit_0,logit_1,label\n1.0,2.0,0.5\n",
                         "line 2, column 'label': label '0.5' is not an integer"),
    "inf": ("logit_0,logit_1,label\n1.0,inf,0\n", "line 2, column 'logit_1': value 'inf' is not finite"),
    "ragged list": ("logits,label\n\"[1, 2, 3]\",0\n\"[1 2]\",1\n",
                    "line 3, column 'logits': 2 values, but the first row has 3"),
    "short row": ("logit_0,logit_1,label\n1.0,2.0\n", "line 2: 2 fields, but the header has 3"),
    "empty file": ("", "empty file (no header line)"),
    "no rows": ("logit_0,logit_1,label\n", "no rows"),
    "no label column": ("logit_0,logit_1,cls\n1,2,0\n", "no label column (label, labels, target, y)"),
    "no value columns": ("a,b,label\n1,2,0\n", "cannot tell which columns hold the values"),
    "bad split": ("logit_0,logit_1,label,split\n1,2,0,val\n1,2,1,train\n",
                  "line 3, column 'split': split 'train' is not val, valid, validation or test"),
    # One value column is a binary table (read_table(binary=True), tests/convert/test_convert_binary.py).
    "binary label 2": ("logit_0,label\n1,0\n2,2\n", "line 3, column 'label': label 2 outside [0, 2)"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLE))
def test_malformed_csv(tmp_path, case):
    text, message = BAD_TABLE[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    extra = ["--split-column", "split"] if "split" in text.split("\n")[0] else ["--split-seed", "0"]
    line = convert_fails(path, *extra, "-o", tmp_path / "o.h5")
    assert line.startswith(f"{PREFIX}{path}: ") and message in line, line


def test_malformed_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"logits": pa.array([[1.0, 2.0], [1.0, None]]), "label": [0, 1]}), path)
    line = convert_fails(path, "--split-seed", "0", "-o", tmp_path / "o.h5")
    assert line == f"{PREFIX}{path}: row 1, column 'logits': value None is not a number"
    pq.write_table(pa.table({"logit_0": [1.0, 2.0], "logit_1": [0.5, 0.25], "label": [0, 5]}), path)
    assert f"{path}: row 1, column 'label': label 5 outside [0, 2)" in convert_fails(
        path, "--split-seed", "0", "-o", tmp_path / "o.h5")
    path.write_bytes(b"PAR1 not really")
    assert "cannot read it as Parquet" in convert_fails(path, "--split-seed", "0", "-o", tmp_path / "o.h5")


def test_parquet_without_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    line = convert_fails(FIX / "table_list.parquet", "--split-column", "split", "-o", tmp_path / "o.h5")
    assert "reading Parquet needs pyarrow" in line and "table_list.parquet" in line


def test_standalone_script_needs_no_package(tmp_path):
    """The converter run as a script, from elsewhere, without calibench on the path: inputs.py is
    loaded by path and needs numpy only."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = tmp_path / "hs.h5"
    run = subprocess.run([sys.executable, "-B", str(CONVERT_DIR / "calibench_convert.py"),
                          str(HELLASWAG), "--split-seed", "0", "-o", str(out)],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"calibench-convert: wrote {out}: val 3 x 4 float64 logits")
    _, lls, _ = expected_lm(HELLASWAG)
    data, _ = read_h5(out)
    np.testing.assert_array_equal(data["test/logits"], np.array(lls)[data["test/index"]])
