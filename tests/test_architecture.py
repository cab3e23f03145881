"""The import layers of the package, checked by parsing every import (function-local ones included).

A module may import from its own layer or from the layers below, never from above, and never a
``_private`` name of another module. The layers, lowest first:

0. ``data_utils``: the data (imports nothing of ``pemd_tutorial``);
1. the maths and the settings: ``config``, ``jsonio``, ``emd``, ``correlation``, ``mind``, ``similarity``,
   ``discrepancies``, ``stats``;
2. the networks: ``model``;
3. training and evaluation: ``evaluate``, ``loop``, ``training``, ``pretrained``, ``selection``;
4. figures and reports: ``figures``, ``report``, ``widgets`` (plots of results dicts; an experiment
   writes its own report, so they sit below the experiments);
5. the experiments and the registration of a user's pair: ``experiment``, ``paper``,
   ``registration``;
6. the command line and the package's namespace: ``__main__``, ``__init__``.

Benchmarks and scripts may import anything public.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "config": 1, "jsonio": 1, "emd": 1, "correlation": 1, "mind": 1, "similarity": 1, "discrepancies": 1,
    "shifts": 1, "staging": 1, "stats": 1,
    "model": 2,
    "evaluate": 3, "loop": 3, "training": 3, "pretrained": 3, "selection": 3,
    "figures": 4, "report": 4, "widgets": 4,
    "experiment": 5, "paper": 5, "registration": 5,
    "__main__": 6, "__init__": 6,
}


def _layer(module: str) -> int | None:
    """Layer of a dotted module name of this project (``None`` for anything else)."""
    parts = module.split(".")
    if parts[0] == "data_utils":
        return 0
    if parts[0] == "pemd_tutorial":
        return LAYERS["__init__"] if len(parts) == 1 else LAYERS[parts[1]]
    return None


def _imports(path: Path):
    """``(line, module, names)`` of every import in a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, []


def _files(*folders: str):
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def _own_layer(path: Path) -> int:
    """Layer of a file of the project (a module of a subpackage has the subpackage's layer)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return 0 if parts[0] == "data_utils" else LAYERS[parts[1]]


def test_every_package_module_has_a_layer():
    package = ROOT / "pemd_tutorial"
    modules = {p.stem for p in package.glob("*.py")} | {p.parent.name for p in package.glob("*/__init__.py")}
    assert modules == set(LAYERS), f"give these a layer in LAYERS: {sorted(modules ^ set(LAYERS))}"


@pytest.mark.parametrize("path", _files("pemd_tutorial", "data_utils"), ids=lambda p: p.stem)
def test_no_import_climbs_a_layer(path):
    own = _own_layer(path)
    for line, module, _ in _imports(path):
        target = _layer(module)
        if target is not None:
            assert target <= own, f"{path.relative_to(ROOT)}:{line} imports {module} (layer {target} > {own})"


@pytest.mark.parametrize("path", _files("pemd_tutorial", "data_utils", "benchmarks", "scripts", "tests"),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_private_name_crosses_a_module(path):
    for line, module, names in _imports(path):
        if _layer(module) is None:
            continue
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{path.relative_to(ROOT)}:{line} imports private {private} from {module}"


def test_the_checks_can_fail(tmp_path):
    bad = tmp_path / "model.py"
    bad.write_text("from pemd_tutorial.experiment import run_experiment\nfrom pemd_tutorial.emd import _x\n")
    found = list(_imports(bad))
    assert _layer(found[0][1]) > LAYERS["model"] and found[1][2] == ["_x"]


def _writes_json_by_hand(tree: ast.AST) -> list[int]:
    """Lines that call ``json.dump(...)`` or ``<path>.write_text(json.dumps(...))``."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "dump" and getattr(node.func.value, "id", "") == "json":
            lines.append(node.lineno)
        elif node.func.attr == "write_text" and any(
            isinstance(sub, ast.Attribute) and sub.attr == "dumps" and getattr(sub.value, "id", "") == "json"
            for arg in node.args for sub in ast.walk(arg)
        ):
            lines.append(node.lineno)
    return lines


def test_results_files_are_written_by_the_one_json_writer():
    """JSON files are written by pemd_tutorial.jsonio.write_json only (atomic, NaN-safe)."""
    standalone = {ROOT / "scripts" / "build_embedded_data.py"}  # runs without the package installed
    files = [p for p in _files("pemd_tutorial", "data_utils", "benchmarks", "scripts") if p not in standalone]
    offenders = [f"{p.relative_to(ROOT)}:{line}"
                 for p in files for line in _writes_json_by_hand(ast.parse(p.read_text()))]
    assert offenders == [], f"write these with pemd_tutorial.jsonio.write_json: {offenders}"
    assert _writes_json_by_hand(ast.parse("import json\nPath('a').write_text(json.dumps({}))\n")) == [2]
