"""Checks that need a fresh interpreter start as soon as the tests are collected.

Some tests run a script in a new Python process, because JAX fixes the number of CPU
devices when it starts (``tests/test_sim_parallel.py``). Such a script is bound by
compilation, which uses one core, as does the main test process. So on a machine with
two cores the scripts should run beside the rest of the suite instead of after it.

A test module lists such scripts in ``EARLY_JOBS``: a dict from test name to a function
that returns ``(argv, env)``. After collection and deselection, the scripts of the
selected tests start at once, side by side. A test asks for the ``early_job`` fixture,
a function that waits for its own script and returns the script's stdout; it fails the
test, with the script's stderr, if the script failed. A test whose script was not
started early (under another runner, say) starts it when it asks.
"""

from __future__ import annotations

import subprocess
import tempfile

import pytest

TIMEOUT_S = 1800.0


class _Job:
    """One script in a fresh interpreter, started at once; its output goes to files
    (a pipe that nobody reads until the test runs could fill up and stall it)."""

    def __init__(self, argv, env):
        self.out = tempfile.TemporaryFile("w+")
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.out, stderr=self.err, text=True)

    def result(self) -> str:
        """Wait for the script; its stdout, or a test failure with its stderr."""
        try:
            code = self.proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the script ran for more than {TIMEOUT_S:.0f} s")
        self.out.seek(0)
        self.err.seek(0)
        out, err = self.out.read(), self.err.read()
        assert code == 0, f"the script exited with {code}:\n{err[-4000:]}"
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        self.err.close()


_JOBS: dict[str, _Job] = {}


def _spec(item):
    module = getattr(item, "module", None)
    return getattr(module, "EARLY_JOBS", {}).get(getattr(item, "originalname", item.name))


def pytest_collection_finish(session):
    for item in session.items:
        make = _spec(item)
        if make is not None and item.nodeid not in _JOBS:
            _JOBS[item.nodeid] = _Job(*make())


def pytest_sessionfinish(session):
    for job in _JOBS.values():
        job.close()


@pytest.fixture
def early_job(request):
    """A function that waits for this test's ``EARLY_JOBS`` script and returns its stdout
    (failing the test, with the script's stderr, if the script failed)."""
    job = _JOBS.get(request.node.nodeid)
    if job is None:
        make = _spec(request.node)
        assert make is not None, f"{request.node.name} has no entry in EARLY_JOBS"
        job = _JOBS[request.node.nodeid] = _Job(*make())
    return job.result
