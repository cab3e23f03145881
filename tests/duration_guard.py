"""A pytest plugin that keeps the unmarked tests fast: a time budget for each test's call.

``make check`` (the inner loop) runs the tests without the ``slow`` and ``browser`` marks and passes
``--max-test-seconds``; a test without either mark whose call phase takes longer fails, with its
duration and the budget in the message, so that a slow test is made faster or marked ``slow``
(it then still runs in ``make test``). ``PEMD_MAX_TEST_SECONDS`` sets the budget when the option is
not given; without both (``make test``, a plain ``pytest``) nothing is checked.

Only the call phase is timed: a module-scoped fixture's setup is shared by the tests of its module.
``tests/conftest.py`` registers the hooks; ``tests/test_duration_guard.py`` runs it on planted tests.
"""

from __future__ import annotations

import os

import pytest

#: the marks whose tests may take as long as they need
EXEMPT_MARKS = ("slow", "browser")
ENV_VAR = "PEMD_MAX_TEST_SECONDS"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--max-test-seconds", type=float, default=None, metavar="S",
        help=f"fail a test without the {' or '.join(EXEMPT_MARKS)} mark whose call takes more than S "
             f"seconds (default: ${ENV_VAR}, else no limit)")


def budget(config: pytest.Config) -> float | None:
    """The budget in seconds: ``--max-test-seconds``, else ``$PEMD_MAX_TEST_SECONDS``, else ``None``."""
    value = config.getoption("--max-test-seconds", default=None)
    if value is None:
        raw = os.environ.get(ENV_VAR, "").strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise pytest.UsageError(f"${ENV_VAR} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise pytest.UsageError(f"the test time budget must be positive, got {value}")
    return value


_BUDGET = pytest.StashKey[float | None]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_BUDGET] = budget(config)  # read once: a test that sets the variable changes nothing


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.passed:
        return
    limit = item.config.stash.get(_BUDGET, None)
    if limit is None or any(item.get_closest_marker(mark) for mark in EXEMPT_MARKS):
        return
    if report.duration > limit:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} passed but took {report.duration:.1f} s, over the budget of {limit:g} s "
            f"for a test without the {' or '.join(EXEMPT_MARKS)} mark (--max-test-seconds or "
            f"${ENV_VAR}): make it faster, or mark it @pytest.mark.slow so that only `make test` runs it")
