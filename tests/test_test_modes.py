"""The suite's two modes, run as a developer runs them (a pytest process each).

Without TEST_MONGODB_URL the `real_mongodb` tests are skipped and the summary says how many;
with an unreachable TEST_MONGODB_URL the run stops at once with one readable message.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Variables of the outer run that an inner pytest must not share (its plugins' result folders).
_OUTER = ("QUERY_PLAN_SHAPES_DIR", "PROBLEM_AUDIT_DIR", "PYTEST_ADDOPTS", "TEST_MONGODB_URL")


def _pytest(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    environment = {k: v for k, v in os.environ.items() if k not in _OUTER}
    environment.update(env)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, time.monotonic() - start


def test_without_a_server_the_real_server_tests_are_skipped_and_counted() -> None:
    done, _ = _pytest("tests/test_real_mongodb.py", "--collect-only")
    collected = sum(1 for line in done.stdout.splitlines() if "::test_" in line)
    assert collected >= 15, done.stdout
    done, _ = _pytest("tests/test_real_mongodb.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{collected} skipped" in done.stdout
    line = f"real-server tests: {collected} skipped (set TEST_MONGODB_URL to run them on MongoDB)"
    assert line in done.stdout.splitlines()


def test_an_unreachable_server_stops_the_run_at_once_with_one_message() -> None:
    url = "mongodb://tester:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=500"
    done, seconds = _pytest("tests/test_health.py", TEST_MONGODB_URL=url)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output  # pytest's INTERNAL_ERROR: nothing ran
    assert "MongoDB did not answer a ping" in output
    assert "mongodb://***@127.0.0.1:1/" in output and "s3cret" not in output
    assert not re.search(r"\d+ (passed|failed|errors?)\b", output)  # no test ran
    assert seconds < 60  # imports plus one ping (MONGODB_TIMEOUT_MS), not a timeout per test
