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

    def run(*args, timeout=600, cwd=None, env=None):
        return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env=env)

    return run


def failed_cleanly(proc, code=2):
    """One line on stderr starting 'calibench: error:', the given exit code, no crash."""
    assert proc.returncode == code, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calibench: error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="session")
def fault_lib(tmp_path_factory):
    """The fault-injecting write layer (fault_write.c): CTest's build of it, or one compiled here."""
    import os
    import shutil

    built = os.environ.get("CALIBENCH_FAULT_LIB")
    if built and os.path.exists(built):
        return built
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build tests/hostile/fault_write.c (CTest builds it: CALIBENCH_FAULT_LIB)")
    out = tmp_path_factory.mktemp("fault") / "fault_write.so"
    src = pathlib.Path(__file__).with_name("fault_write.c")
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(src), "-ldl"], check=True)
    return str(out)


@pytest.fixture
def full_disk(fault_lib):
    """full_disk(folder, budget=0) -> environment in which writes under `folder` fail with ENOSPC
    after `budget` bytes."""
    import os

    def env(folder, budget=0):
        e = dict(os.environ)
        e.update(LD_PRELOAD=fault_lib, CALIBENCH_FAULT_DIR=str(folder), CALIBENCH_FAULT_BYTES=str(budget))
        return e

    return env
