# What the Python test suites share: the repository, the real dumps (used when present, skipped
# cleanly otherwise) and the calibench binary under test (CALIBENCH_BIN, set by CTest).
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
REAL_DUMPS = REPO.parent / "shared" / "data" / "real" / "h5"


def calibench_bin() -> str:
    path = os.environ.get("CALIBENCH_BIN", str(REPO / "build" / "calibench"))
    if not os.path.exists(path):
        raise RuntimeError(f"calibench binary not found at {path}; build first or set CALIBENCH_BIN")
    return path
