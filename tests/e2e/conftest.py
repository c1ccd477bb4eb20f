# Shared pytest fixtures for the end-to-end CLI tests: where the calibench binary is and how to run it.
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
from paths import REPO, calibench_bin  # noqa: E402,F401  (tests import REPO from here)


@pytest.fixture(scope="session")
def calibench():
    """Run the CLI: calibench(*args) -> CompletedProcess with text stdout/stderr."""
    exe = calibench_bin()

    def run(*args, timeout=600):
        return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout)

    return run
