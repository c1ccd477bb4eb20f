# Fixtures of the Python package tests: the installed `calibench` module, the CLI binary it is
# compared with, synthetic dumps made by `calibench synth`, and the real dumps when present.
import json
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
from paths import REAL_DUMPS, REPO, calibench_bin  # noqa: E402,F401

try:
    import calibench  # noqa: F401  (the installed package, not a source folder)
except ImportError as e:  # a collection error names the fix instead of a bare ImportError
    raise ImportError(
        f"the calibench Python package is not installed ({e}); build it with `python3 -m pip install "
        "--no-build-isolation .` in the repository (scripts/setup.sh does)"
    ) from e


@pytest.fixture(scope="session")
def cli():
    """cli(*args) -> the parsed JSON the CLI printed (it must exit 0)."""
    exe = calibench_bin()

    def run(*args):
        p = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"calibench {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}"
        return json.loads(p.stdout)

    return run


@pytest.fixture(scope="session")
def cli_raw():
    """cli_raw(*args) -> CompletedProcess (for error cases)."""
    exe = calibench_bin()
    return lambda *args: subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=600)


# Synthetic dumps: (classes, n_val, n_test, seed). Small enough that every fit method runs in
# well under a second on one core; K = 100 covers the many-class paths.
SYNTH = {"k10": (10, 1500, 2000, 7), "k3": (3, 800, 1000, 11), "k100": (100, 1200, 1500, 5)}


@pytest.fixture(scope="session")
def synth_dumps(tmp_path_factory):
    """{name: path} of dumps written by `calibench synth`."""
    exe = calibench_bin()
    folder = tmp_path_factory.mktemp("synth")
    out = {}
    for name, (k, n_val, n_test, seed) in SYNTH.items():
        path = folder / f"{name}.h5"
        subprocess.run([exe, "synth", "--out", str(path), "--classes", str(k), "--n-val", str(n_val), "--n-test",
                        str(n_test), "--seed", str(seed)], check=True, capture_output=True, timeout=600)
        out[name] = str(path)
    return out
