# The hostile-input suite (issue 15): what a careless or hostile user can hand calibench, each
# case reproduced from a report and checked for a clear error, no write outside --out and no
# crash. Uses the binary under test (CALIBENCH_BIN, set by CTest).
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
from paths import REPO, calibench_bin  # noqa: E402,F401


@pytest.fixture(scope="session")
def calibench():
    """Run the CLI: calibench(*args, cwd=None) -> CompletedProcess with text stdout/stderr."""
    exe = calibench_bin()

    def run(*args, timeout=600, cwd=None):
        return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd)

    return run


def failed_cleanly(proc, code=2):
    """One line on stderr starting 'calibench: error:', the given exit code, no crash."""
    assert proc.returncode == code, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calibench: error: "), proc.stderr
    return lines[0]
