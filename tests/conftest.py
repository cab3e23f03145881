"""Shared fixtures, and the time budget of ``make check`` (``tests/duration_guard.py``).

The factories (tiny configurations, a NIfTI writer) are in ``tests/helpers.py``:
``from helpers import tiny_config``. Every test makes its own data; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# the time budget of `make check` (--max-test-seconds); its hooks are registered by being named here
from duration_guard import pytest_addoption, pytest_configure, pytest_runtest_makereport  # noqa: F401
from helpers import TINY


@pytest.fixture
def tiny_json(tmp_path) -> Path:
    """:data:`TINY` as a ``--config-json`` file."""
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({**TINY, "channels": list(TINY["channels"])}))
    return path
