"""The wheel a pip user gets: it builds, and imports from outside the checkout with its data and networks.

The wheel is built without build isolation (offline, from the setuptools of this environment) and
unpacked with pip into a temporary folder; a Python started in another temporary folder, with only
that folder before its own site-packages, must import the package from the wheel (not from the
checkout) and find the embedded data, the shipped networks and the register command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
from pathlib import Path
import data_utils, pemd_tutorial
from data_utils import load_embedded
from pemd_tutorial.pretrained import PRETRAINED_NAMES, load_pretrained
from pemd_tutorial.__main__ import main
root = Path(sys.argv[1])
for module in (data_utils, pemd_tutorial):
    assert Path(module.__file__).resolve().is_relative_to(root), module.__file__
assert load_embedded("test").images["t1"].shape[0] == 8
net = load_pretrained("mcd_pemd")
try:
    main(["register", "--help"])
except SystemExit as stop:
    assert stop.code == 0
print("wheel ok", pemd_tutorial.__file__)
"""


@pytest.mark.slow
def test_the_wheel_builds_and_imports_from_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(dist)], check=True, cwd=tmp_path)
    wheels = list(dist.glob("pemd_tutorial-*.whl"))
    assert len(wheels) == 1
    assert wheels[0].stat().st_size < 20e6  # data and networks included, nothing more
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target",
                    str(target), str(wheels[0])], check=True, cwd=tmp_path)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", CHECK, str(target)], cwd=away, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wheel ok" in out.stdout
