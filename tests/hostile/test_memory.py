# Out of memory (issue 15, item 4): under an address-space limit, an allocation that fails on
# any thread (the metric loops run on OpenMP threads, where an escaping std::bad_alloc used to
# abort the process, exit 134) is one line and exit 1 from the CLI and MemoryError in Python.
# The limits are scanned upwards from just above what the process already holds, so some runs
# fail in the loading, some in the metric loops and some succeed, whatever the machine.
import os
import resource
import subprocess
import sys

import pytest

from conftest import calibench_bin

ROWS = 300_000

# AddressSanitizer reserves terabytes of shadow memory, which no address-space limit admits.
pytestmark = pytest.mark.skipif(os.environ.get("CALIBENCH_SANITIZED") == "1",
                                reason="memory-limit scans do not run under AddressSanitizer")


@pytest.fixture(scope="module")
def tall_dump(tmp_path_factory, calibench):
    path = tmp_path_factory.mktemp("tall") / "tall.h5"
    proc = calibench("synth", "--out", path, "--classes", 10, "--n-val", 1000, "--n-test", ROWS, "--seed", 1)
    assert proc.returncode == 0, proc.stderr
    return path


def limited(kib):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_AS, (kib * 1024, kib * 1024))
    return set_limit


def scan(run, limits):
    """Runs `run(limit)` for each limit; returns the outcomes, each checked."""
    outcomes = []
    for kib in limits:
        proc = run(kib)
        assert proc.returncode >= 0, f"limit {kib} KiB: killed by signal {-proc.returncode}\n{proc.stderr}"
        outcomes.append((kib, proc))
    return outcomes


@pytest.mark.parametrize("extra,span", [([], 200_000), (["--bootstrap", "4"], 300_000)])
def test_cli_eval_under_memory_limits(calibench, tall_dump, extra, span):
    exe = calibench_bin()
    # The smallest limit under which the binary starts at all (with its OpenMP threads, which
    # it starts first: below that limit libgomp's own message ends the process).
    floor = next(kib for kib in range(10_000, 400_000, 5_000)
                 if subprocess.run([exe, "version"], capture_output=True, preexec_fn=limited(kib),
                                   env={**os.environ, "OMP_NUM_THREADS": "2"}).returncode == 0)

    def run(kib):
        return subprocess.run([exe, "eval", str(tall_dump), *extra], capture_output=True, text=True,
                              preexec_fn=limited(kib), env={**os.environ, "OMP_NUM_THREADS": "2"})

    outcomes = scan(run, range(floor, floor + span + 1, span // 12))
    failures = 0
    for kib, proc in outcomes:
        if proc.returncode == 0:
            continue
        failures += 1
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("calibench: error: "), \
            f"limit {kib} KiB: rc={proc.returncode}\n{proc.stderr}"
        assert "out of memory" in lines[0]
    assert failures > 0, "no limit was tight enough: the scan must reach the out-of-memory path"
    assert outcomes[-1][1].returncode == 0, "the largest limit should be enough"


CHILD = """
import resource, sys
import numpy as np, calibench
rng = np.random.default_rng(0)
z = rng.standard_normal(({rows}, 10), dtype=np.float32)
y = rng.integers(0, 10, {rows}).astype(np.int32)
vm = int([l for l in open('/proc/self/status') if l.startswith('VmSize')][0].split()[1]) * 1024
limit = vm + int(sys.argv[1]) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    calibench.evaluate(z, y, bins=15{kwargs})
    print("ok")
except MemoryError as e:
    print("MemoryError", e)
"""


@pytest.mark.parametrize("kwargs", ["", ", bootstrap=4"])
def test_python_evaluate_raises_memory_error(kwargs):
    code = CHILD.format(rows=ROWS, kwargs=kwargs)
    seen = set()
    for extra_mib in range(5, 200, 15):
        proc = subprocess.run([sys.executable, "-c", code, str(extra_mib)], capture_output=True, text=True,
                              env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"})
        assert proc.returncode == 0, f"+{extra_mib} MiB: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        seen.add(proc.stdout.split()[0])
    assert seen == {"ok", "MemoryError"}, seen
