"""Cross-check `calibench eval` against the float64 reference on the real logit dumps in
../shared/data/real/h5 (relative to the repository): every *.h5, both splits, 15 bins.

These dumps predate the calibench-logits schema: they lack the `format` attribute and store
num_classes as a string attribute; the CLI accepts that, and so does the reference loader."""
import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
REAL_DIR = (REPO / ".." / "shared" / "data" / "real" / "h5").resolve()

sys.path.insert(0, str(REPO / "tests" / "reference"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import calib_ref as ref  # noqa: E402
from test_eval_reference import compare  # noqa: E402  (same 1e-9 tolerance, TOL)

if not REAL_DIR.is_dir():
    pytest.skip(f"real dumps directory {REAL_DIR} is absent", allow_module_level=True)

DUMPS = sorted(REAL_DIR.glob("*.h5"))
if not DUMPS:
    pytest.skip(f"no *.h5 files in {REAL_DIR}", allow_module_level=True)

BINS = 15


@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("dump", DUMPS, ids=[p.stem for p in DUMPS])
def test_real_dump_matches_reference(calibench, dump, split):
    args = ["eval", dump, "--split", split, "--bins", BINS, "--format", "json"]
    cmd = "calibench " + " ".join(map(str, args))
    proc = calibench(*args)
    assert proc.returncode == 0, f"{cmd}\nexit {proc.returncode}\nstderr: {proc.stderr}"
    cli = json.loads(proc.stdout)
    want = ref.evaluate(str(dump), split, BINS, "right-closed")
    bad = compare(cli, want)
    assert not bad, f"{dump.name} /{split} n={want['n']} k={want['k']}\ncommand: {cmd}\n" + \
        "\n".join(bad)
