# Shared pytest fixtures for the end-to-end CLI tests: where the calibench binary is and how to run it.
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def calibench_bin() -> str:
    path = os.environ.get("CALIBENCH_BIN", str(REPO / "build" / "calibench"))
    if not os.path.exists(path):
        raise RuntimeError(f"calibench binary not found at {path}; build first or set CALIBENCH_BIN")
    return path


@pytest.fixture(scope="session")
def calibench():
    """Run the CLI: calibench(*args) -> CompletedProcess with text stdout/stderr."""
    exe = calibench_bin()

    def run(*args, timeout=600):
        return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout)

    return run
