"""The compiled kernel where numba can write no cache (a read-only install with no writable
home, like the systemd unit's sandbox): compiled in the process instead of failing at import."""

from __future__ import annotations

import os
import subprocess
import sys

from hedgerd.pricing import black76

_CHILD = """
import tempfile

def read_only(*args, **kwargs):
    raise PermissionError(13, "read-only file system (test)")

# numba probes each cache location by creating a temporary file in it
probe, tempfile.TemporaryFile = tempfile.TemporaryFile, read_only
from hedgerd.pricing import _kernel, black76
tempfile.TemporaryFile = probe
print(len(_kernel.UNCACHED), repr(float(black76(True, 100.0, 110.0, 0.5, 0.6, 0.99).price)))
"""


def test_no_writable_cache_location_compiles_in_process() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    run = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    uncached, price = run.stdout.split()
    assert int(uncached) > 0  # every kernel function, without the on-disk cache
    assert float(price) == float(black76(True, 100.0, 110.0, 0.5, 0.6, 0.99).price)
