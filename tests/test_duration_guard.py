"""The time budget of ``make check`` (tests/duration_guard.py) on planted tests in a pytest subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import duration_guard
import pytest

PLANTED = '''
import time

import pytest


def test_quick():
    pass


def test_sleepy():
    time.sleep(0.4)


@pytest.mark.slow
def test_sleepy_but_marked():
    time.sleep(0.4)
'''


def _run_planted(tmp_path: Path, *options: str, env: dict | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "test_planted.py").write_text(PLANTED)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: a slow test\n")
    environ = {k: v for k, v in os.environ.items() if k != duration_guard.ENV_VAR}
    environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), environ.get("PYTHONPATH", "")])
    environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # nbval, playwright, ...: seconds of start-up
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "duration_guard", "-p", "no:cacheprovider", "-q",
         "test_planted.py", *options],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)


def test_an_unmarked_test_over_the_budget_fails_and_a_slow_one_does_not(tmp_path):
    run = _run_planted(tmp_path, "--max-test-seconds=0.2")
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "1 failed, 2 passed" in out, out
    assert "test_planted.py::test_sleepy passed but took" in out
    assert "over the budget of 0.2 s" in out
    assert "test_sleepy_but_marked" not in out.split("short test summary")[-1]


def test_the_environment_variable_sets_the_budget_end_to_end(tmp_path):
    run = _run_planted(tmp_path, "-k", "sleepy", env={duration_guard.ENV_VAR: "0.2"})
    out = run.stdout + run.stderr
    assert run.returncode == 1 and "1 failed, 1 passed" in out, out


def _config(option=None):
    return SimpleNamespace(getoption=lambda name, default=None: option)


def test_budget_reads_the_option_first_then_the_environment(monkeypatch):
    monkeypatch.delenv(duration_guard.ENV_VAR, raising=False)
    assert duration_guard.budget(_config()) is None  # make test: no limit
    monkeypatch.setenv(duration_guard.ENV_VAR, "7.5")
    assert duration_guard.budget(_config()) == 7.5
    assert duration_guard.budget(_config(3.0)) == 3.0
    monkeypatch.setenv(duration_guard.ENV_VAR, "fast")
    with pytest.raises(pytest.UsageError, match="PEMD_MAX_TEST_SECONDS"):
        duration_guard.budget(_config())
    with pytest.raises(pytest.UsageError, match="positive"):
        duration_guard.budget(_config(0.0))
