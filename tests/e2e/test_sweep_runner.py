# `calibench sweep`: resumable runs (SIGKILL at random points gives the same rows as an
# uninterrupted run), failing cells recorded while the rest finish, stable cell identities,
# spec errors, and the reports.
import csv
import io
import json
import os
import random
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

from conftest import calibench_bin

SPEC = """
name = "runner test"
bins = 10
seeds = [0, 3]
bootstrap = 20

[[datasets]]
synth = {{ name = "a", classes = 5, n_val = 1500, n_test = 1500, seed = 1 }}

[[datasets]]
synth = {{ name = "b", classes = 12, n_val = 1000, n_test = 2000, seed = 2, temperature = 2.0 }}
{extra}
[[methods]]
method = "uncalibrated"

[[methods]]
label = "TS-{{objective}}"
method = "ts"
objective = ["nll", "ece"]

[[methods]]
method = "cws"
calib_bins = [5, 10]

[[methods]]
method = "cts_greedy"
iterations = 2
"""

# Columns that legitimately differ between two runs of the same cell (synthetic dumps live
# under each output folder, so their path differs between folders).
VOLATILE = {"seconds", "backend", "file"}


def write_spec(tmp_path, extra=""):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(extra=extra))
    return path


def stable_rows(out_dir):
    with open(out_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    return sorted(({k: v for k, v in r.items() if k not in VOLATILE} for r in rows),
                  key=lambda r: (r["id"], r["split"]))


def nan_dump(path):
    """A dump whose test logits are NaN: every cell of it fails, with the reader's message."""
    with h5py.File(path, "w") as f:
        f["val/logits"] = np.zeros((10, 3), dtype=np.float32)
        f["val/labels"] = np.zeros(10, dtype=np.int32)
        f["test/logits"] = np.full((10, 3), np.nan, dtype=np.float32)
        f["test/labels"] = np.zeros(10, dtype=np.int32)
    return path


def run(*args, **kw):
    # Plots have their own test (test_plots.py); here they would only slow every run down.
    if args and args[0] == "sweep" and "--list" not in args:
        args = (*args, "--no-plots")
    return subprocess.run([calibench_bin(), *map(str, args)], capture_output=True, text=True, **kw)


def test_full_run_and_reports(tmp_path):
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    proc = run("sweep", spec, "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = stable_rows(out)
    assert len(rows) == 2 * 6 * 2 * 2  # datasets x methods x seeds x splits
    assert {r["label"] for r in rows} == {"uncal", "TS-nll", "TS-ece", "cws calib_bins=5", "cws calib_bins=10",
                                          "cts_greedy"}
    assert all(r["error"] == "" for r in rows)
    table = (out / "table.md").read_text()
    assert "| a |" in table and "| b |" in table and "±" in table and "**" in table
    assert "Paired bootstrap comparisons" in table
    assert "\\begin{tabular}" in (out / "table.tex").read_text()
    cells = json.loads((out / "results.json").read_text())
    assert len(cells) == 24 and all(len(c["test_bootstrap_ece"]) == 20 for c in cells)
    with h5py.File(out / "results.h5") as f:
        assert len(f["cells"]) == 24
        some = next(iter(f["cells"].values()))
        assert "params" in some.attrs and "label" in some.attrs
    # Metrics of a cell equal `calibench fit` on the same dump (seed 0 = the dump's own split).
    ts = next(c for c in cells if c["label"] == "TS-nll" and c["seed"] == 0 and c["dataset"] == "a")
    fit = json.loads(run("fit", ts["file"], "--method", "ts", "--bins", 10, "--format", "json").stdout)
    assert fit["params"] == ts["params"] and fit["test"] == ts["test"]
    # A rerun does nothing and reports the same rows.
    again = run("sweep", spec, "--out", out)
    assert again.returncode == 0 and "24 cells: 0 run, 24 already done, 0 failed" in again.stdout
    assert stable_rows(out) == rows


def test_resume_after_sigkill_gives_identical_rows(tmp_path):
    spec = write_spec(tmp_path)
    reference = tmp_path / "reference"
    assert run("sweep", spec, "--out", reference).returncode == 0
    out = tmp_path / "killed"
    rng = random.Random(11)
    kills = 0
    for _ in range(40):
        proc = subprocess.Popen([calibench_bin(), "sweep", str(spec), "--out", str(out), "--no-plots"],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if proc.returncode == 0:
            break
        # Every file present is complete: atomic writes leave no partial cell behind.
        for name in os.listdir(out / "cells") if (out / "cells").exists() else []:
            if name.endswith(".json"):
                json.loads((out / "cells" / name).read_text())
    final = run("sweep", spec, "--out", out)
    assert final.returncode == 0, final.stderr
    assert kills >= 1, "the run finished before any kill: make the cells slower"
    assert stable_rows(out) == stable_rows(reference)


def test_failing_cell_is_recorded_and_the_rest_finish(tmp_path):
    bad = nan_dump(tmp_path / "bad.h5")
    spec = write_spec(tmp_path, extra=f'\n[[datasets]]\npath = "{bad}"\n')
    out = tmp_path / "out"
    proc = run("sweep", spec, "--out", out)
    assert proc.returncode == 3, proc.stderr
    rows = stable_rows(out)
    failed = [r for r in rows if r["error"]]
    assert failed and all(r["dataset"] == "bad" for r in failed)
    assert all("/test/logits" in r["error"] and "index [0, 0]" in r["error"] for r in failed)
    assert all(r["error"] == "" for r in rows if r["dataset"] != "bad")
    assert "failed" in (out / "table.md").read_text()
    # Failed cells run again on the next invocation (the file may have been fixed).
    again = run("sweep", spec, "--out", out)
    assert again.returncode == 3 and "12 run, 24 already done, 12 failed" in again.stdout


def test_identities_are_stable_and_follow_content(tmp_path):
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    first = run("sweep", spec, "--out", out, "--list").stdout
    assert first == run("sweep", spec, "--out", out, "--list").stdout
    assert len(first.splitlines()) == 24 and len({l.split()[0] for l in first.splitlines()}) == 24
    # A different dump content gives different identities.
    spec.write_text(spec.read_text().replace("seed = 1 }", "seed = 7 }"))
    second = run("sweep", spec, "--out", out, "--list").stdout
    ids_a = {l.split()[0] for l in first.splitlines() if "  a  " in l}
    ids_a2 = {l.split()[0] for l in second.splitlines() if "  a  " in l}
    assert ids_a.isdisjoint(ids_a2)


@pytest.mark.parametrize("body,needle", [
    ("name = 1\n[[datasets]]\npath='x'\n[[methods]]\nmethod='ts'\n", "name"),
    ("[[methods]]\nmethod='ts'\n", "datasets"),
    ("[[datasets]]\nsynth={classes=3}\n", "methods"),
    ("[[datasets]]\nsynth={classes=3}\n[[methods]]\nmethod='nope'\n", "method"),
    ("[[datasets]]\nsynth={classes=3}\n[[methods]]\nmethod='ts'\nobjectiv='nll'\n", "objectiv"),
    ("[[datasets]]\npath='missing-*.h5'\n[[methods]]\nmethod='ts'\n", "no file matches"),
    ("bins = 0\n[[datasets]]\nsynth={classes=3}\n[[methods]]\nmethod='ts'\n", "bins"),
    ("this is not toml", "line 1"),
    ("[[datasets]]\nsynth={classes=3}\n[[methods]]\nmethod='ts'\n[[methods]]\nmethod='ts'\n", "label"),
])
def test_spec_errors(tmp_path, body, needle):
    spec = tmp_path / "bad.toml"
    spec.write_text(body)
    proc = run("sweep", spec, "--out", tmp_path / "out")
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert proc.stderr.startswith("calibench: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert str(spec) in proc.stderr and needle in proc.stderr, proc.stderr


def test_optional_dataset_glob_is_noted(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text("[[datasets]]\nsynth={classes=3, n_val=50, n_test=50}\n[[datasets]]\npath='none-*.h5'\n"
                    "optional = true\n[[methods]]\nmethod='ts'\n")
    out = tmp_path / "out"
    proc = run("sweep", spec, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "no file matches" in (out / "table.md").read_text()


def test_identities_do_not_depend_on_the_output_folder(tmp_path):
    """Synthetic dumps are byte-reproducible, so their cells have the same identities anywhere."""
    spec = write_spec(tmp_path)
    a = run("sweep", spec, "--out", tmp_path / "one", "--list").stdout
    b = run("sweep", spec, "--out", tmp_path / "two", "--list").stdout
    assert a == b and len(a.splitlines()) == 24


def test_mpi_two_ranks_give_the_rows_of_one_process(tmp_path):
    import shutil
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun is not installed")
    if "MPI sharding: built" not in run("version").stdout:
        pytest.skip("this calibench was built without MPI")
    spec = write_spec(tmp_path)
    one = tmp_path / "one"
    assert run("sweep", spec, "--out", one).returncode == 0
    two = tmp_path / "two"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    proc = subprocess.run(["mpirun", "--oversubscribe", "-n", "2", calibench_bin(), "sweep", str(spec), "--out", str(two),
                           "--no-plots"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "2 ranks" in proc.stdout and proc.stdout.count("cells:") == 1  # only rank 0 reports
    assert stable_rows(two) == stable_rows(one)


def test_four_shards_then_merge_give_the_rows_of_one_run(tmp_path):
    spec = write_spec(tmp_path)
    one = tmp_path / "one"
    assert run("sweep", spec, "--out", one).returncode == 0
    out = tmp_path / "shards"
    # The four shards at once on one folder, as array jobs would run them (the synthetic dumps
    # are generated by whichever shard gets there first, atomically).
    procs = [subprocess.Popen([calibench_bin(), "sweep", str(spec), "--out", str(out), "--shard", f"{i}/4"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for i, (p, (stdout, stderr)) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, stderr
        assert stdout.startswith(f"shard {i}/4: 6 cells: 6 run, 0 already done, 0 failed"), stdout
        assert "--merge" in stdout
    assert not (out / "results.csv").exists()  # shards write no reports
    listed = [run("sweep", spec, "--out", out, "--list", "--shard", f"{i}/4").stdout.splitlines() for i in range(4)]
    everything = run("sweep", spec, "--out", out, "--list").stdout.splitlines()
    assert [line for i in range(6) for line in (s[i] for s in listed)] == everything
    merged = run("sweep", spec, "--out", out, "--merge")
    assert merged.returncode == 0, merged.stderr
    assert "24 cells merged" in merged.stdout and "0 failed" in merged.stdout
    assert stable_rows(out) == stable_rows(one)
    assert (out / "table.md").read_text() == (one / "table.md").read_text()
    # The next unsharded run finds every cell done and writes the same reports.
    again = run("sweep", spec, "--out", out)
    assert again.returncode == 0 and "0 run, 24 already done" in again.stdout
    assert stable_rows(out) == stable_rows(one)


def test_merge_refuses_while_a_shard_has_not_run(tmp_path):
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    for i in (0, 2):
        assert run("sweep", spec, "--out", out, "--shard", f"{i}/3").returncode == 0
    merged = run("sweep", spec, "--out", out, "--merge")
    assert merged.returncode == 3
    first_missing = run("sweep", spec, "--out", out, "--list").stdout.splitlines()[1].split()[0]
    assert merged.stderr.startswith("calibench: error: --merge: 8 of 24 cells have no result in "), merged.stderr
    assert f"the first is cell 1 (" in merged.stderr and first_missing in merged.stderr
    assert not (out / "results.csv").exists()
    assert run("sweep", spec, "--out", out, "--shard", "1/3").returncode == 0
    assert run("sweep", spec, "--out", out, "--merge").returncode == 0


def test_failed_cells_in_a_shard_are_merged_as_failed(tmp_path):
    bad = nan_dump(tmp_path / "bad.h5")
    spec = write_spec(tmp_path, extra=f'\n[[datasets]]\npath = "{bad}"\n')
    out = tmp_path / "out"
    codes = [run("sweep", spec, "--out", out, "--shard", f"{i}/2").returncode for i in range(2)]
    assert codes == [3, 3]  # each shard holds some of the broken dataset's cells
    merged = run("sweep", spec, "--out", out, "--merge")
    assert merged.returncode == 3 and "12 failed" in merged.stdout, merged.stdout + merged.stderr


@pytest.mark.parametrize("shard, needle", [
    ("4/4", "--shard: expected I/N with 0 <= I < N"),
    ("-1/4", "--shard: expected I/N"),
    ("1", "--shard: expected I/N"),
    ("1/0", "--shard: expected I/N"),
    ("a/b", "--shard: expected I/N"),
    ("1/4x", "--shard: expected I/N"),
])
def test_bad_shard_is_a_usage_error(tmp_path, shard, needle):
    spec = write_spec(tmp_path)
    proc = run("sweep", spec, "--out", tmp_path / "out", "--shard", shard)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "cells").exists()


def test_merge_and_shard_exclude_each_other(tmp_path):
    spec = write_spec(tmp_path)
    proc = run("sweep", spec, "--out", tmp_path / "out", "--shard", "0/2", "--merge")
    assert proc.returncode == 2 and "excludes" in proc.stderr, proc.stderr


SLURM = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "slurm")


def test_slurm_array_scripts_run_the_shards_and_the_merge(tmp_path):
    spec = write_spec(tmp_path)
    one = tmp_path / "one"
    assert run("sweep", spec, "--out", one).returncode == 0
    out = tmp_path / "array"
    for task in range(3):  # what Slurm sets in each task of `sbatch --array=0-2`
        env = dict(os.environ, CALIBENCH=calibench_bin(), SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT="3",
                   SLURM_ARRAY_TASK_MIN="0", SLURM_ARRAY_TASK_MAX="2", SLURM_CPUS_PER_TASK="1")
        proc = subprocess.run(["bash", os.path.join(SLURM, "sweep_shard.sbatch"), str(spec), str(out)],
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 0 and f"shard {task}/3: 8 cells: 8 run" in proc.stdout, proc.stderr
    env = dict(os.environ, CALIBENCH=calibench_bin())
    proc = subprocess.run(["bash", os.path.join(SLURM, "sweep_merge.sbatch"), str(spec), str(out)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert stable_rows(out) == stable_rows(one)
    # An array that does not start at 0 is refused: task ids are the shard numbers.
    env.update(SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_COUNT="2", SLURM_ARRAY_TASK_MIN="1")
    proc = subprocess.run(["bash", os.path.join(SLURM, "sweep_shard.sbatch"), str(spec), str(out)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "--array=0-(N-1)" in proc.stderr


def test_slurm_submit_script_chains_the_merge_after_the_array(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    fake = bin_dir / "sbatch"  # records its arguments, answers as `sbatch --parsable` does
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\nn=$(wc -l < {log}); echo "$((1000 + n));cluster1"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", os.path.join(SLURM, "submit_sweep.sh"), "spec.toml", str(tmp_path / "out"), "4",
                           "--partition=cpu"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    first, second = log.read_text().splitlines()
    assert first.startswith("--parsable --array=0-3 --partition=cpu ") and first.endswith(
        f"sweep_shard.sbatch spec.toml {tmp_path / 'out'}")
    assert second.startswith("--parsable --dependency=afterany:1001 --partition=cpu ")
    assert second.endswith(f"sweep_merge.sbatch spec.toml {tmp_path / 'out'}")
    assert "shards 1001" in proc.stdout and "merge 1002" in proc.stdout
    bad = subprocess.run(["bash", os.path.join(SLURM, "submit_sweep.sh"), "spec.toml", "out", "0"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "positive integer" in bad.stderr


def test_on_request_metrics_stay_out_of_sweeps(tmp_path):
    # skce and skce_pvalue are computed only when named (docs/metrics.md); sweep cells compute the
    # default selection, so they are neither results.csv columns nor a valid table_metric.
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    assert run("sweep", spec, "--out", out).returncode == 0
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert "ece" in header and "brier_uncertainty" in header and not any(h.startswith("skce") for h in header)
    bad = tmp_path / "skce.toml"
    bad.write_text(spec.read_text().replace("bins = 10\n", 'bins = 10\ntable_metric = "skce"\n'))
    proc = run("sweep", bad, "--out", tmp_path / "o2")
    assert proc.returncode == 2 and "table_metric = 'skce'" in proc.stderr, proc.stderr
