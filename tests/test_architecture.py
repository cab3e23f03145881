"""The import layers of the package, checked by parsing every import (function-local ones included).

A module may import from its own layer or from the layers below, never from above, and never a
``_private`` name of another module. Relative imports are resolved, ``importlib.import_module`` and
``__import__`` with a string count as imports, and reading ``module._private`` through a name bound
to another module of the project counts as importing it; each check is proved by a planted
violation (``test_each_check_fails_on_a_planted_violation``). The layers, lowest first:

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


def _absolute(module: str | None, level: int, rel_path: str) -> str:
    """The absolute dotted name of a (possibly relative) import in the file ``rel_path``."""
    if level == 0:
        return module or ""
    package = list(Path(rel_path).with_suffix("").parts)
    if package[-1] != "__init__":
        package = package[:-1]
    else:
        package = package[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, *([module] if module else [])])


def _imports_in(tree: ast.AST, rel_path: str):
    """``(line, module, names)`` of every import of a parsed file, relative imports resolved to
    absolute names and ``importlib.import_module("...")`` / ``__import__("...")`` with a string
    literal counted as imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, rel_path)
            names = []
            for a in node.names:  # ``from package import module`` imports the module
                if _is_module(f"{base}.{a.name}"):
                    yield node.lineno, f"{base}.{a.name}", []
                else:
                    names.append(a.name)
            if names:
                yield node.lineno, base, names
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, []
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("import_module", "__import__"):
                yield node.lineno, node.args[0].value, []


def _is_module(dotted: str) -> bool:
    path = ROOT / Path(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _module_aliases(tree: ast.AST, rel_path: str) -> dict[str, str]:
    """Names bound to modules of this project (``import pemd_tutorial.emd as emd``,
    ``from pemd_tutorial import emd``) -> the module's dotted name."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _layer(a.name) is not None:
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, rel_path)
            for a in node.names:
                if _layer(base) is not None and _is_module(f"{base}.{a.name}"):
                    aliases[a.asname or a.name] = f"{base}.{a.name}"
    return aliases


def violations(source: str, rel_path: str) -> list[str]:
    """Every breach of the layer rules in one file's source (``rel_path`` relative to the root):
    an import (absolute, relative or by an ``importlib`` string) of a higher layer, a ``_private``
    name imported from another project module, and a ``_private`` attribute read through a name
    bound to another project module (``emd._flatten``)."""
    tree = ast.parse(source, rel_path)
    parts = Path(rel_path).with_suffix("").parts
    own = None
    if parts[0] == "data_utils":
        own = 0
    elif parts[0] == "pemd_tutorial":
        own = LAYERS[parts[1]] if len(parts) > 1 and parts[1] in LAYERS else LAYERS["__init__"]
    own_module = ".".join(parts)
    found = []
    for line, module, names in _imports_in(tree, rel_path):
        target = _layer(module)
        if target is None:
            continue
        if own is not None and target > own:
            found.append(f"{rel_path}:{line} imports {module} (layer {target} > {own})")
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        if private and module != own_module:
            found.append(f"{rel_path}:{line} imports private {private} from {module}")
    aliases = _module_aliases(tree, rel_path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{rel_path}:{node.lineno} reads private {node.value.id}.{node.attr}")
    return found


def _files(*folders: str):
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def _layer_of_file(path: Path) -> int:
    """Layer of a file of the project (a module of a subpackage has the subpackage's layer)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return 0 if parts[0] == "data_utils" else LAYERS[parts[1]]


def test_every_package_module_has_a_layer():
    package = ROOT / "pemd_tutorial"
    modules = {p.stem for p in package.glob("*.py")} | {p.parent.name for p in package.glob("*/__init__.py")}
    assert modules == set(LAYERS), f"give these a layer in LAYERS: {sorted(modules ^ set(LAYERS))}"
    assert all(_layer_of_file(p) is not None for p in _files("pemd_tutorial", "data_utils"))


@pytest.mark.parametrize("path", _files("pemd_tutorial", "data_utils", "benchmarks", "scripts", "tests"),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_file_breaks_the_layers(path):
    rel = str(path.relative_to(ROOT))
    if path.name == "test_architecture.py":  # its planted violations are strings, not imports
        return
    assert violations(path.read_text(), rel) == []


@pytest.mark.parametrize(
    "rel_path, source, expected",
    [
        ("pemd_tutorial/model.py", "from pemd_tutorial.experiment import run_experiment\n", "layer 5 > 2"),
        ("pemd_tutorial/model.py", "from .experiment import run_experiment\n", "layer 5 > 2"),
        ("pemd_tutorial/figures/results.py", "from ..experiment import METHODS\n", "layer 5 > 4"),
        ("pemd_tutorial/model.py", "import importlib\nimportlib.import_module('pemd_tutorial.training')\n",
         "layer 3 > 2"),
        ("data_utils/pairs.py", "__import__('pemd_tutorial.config')\n", "layer 1 > 0"),
        ("pemd_tutorial/mind.py", "from .emd import _flatten\n", "private ['_flatten']"),
        ("benchmarks/x.py", "from pemd_tutorial.emd import _flatten\n", "private ['_flatten']"),
        ("pemd_tutorial/mind.py", "from pemd_tutorial import emd\nemd._flatten(1)\n",
         "reads private emd._flatten"),
        ("tests/test_x.py", "import pemd_tutorial.emd as e\ne._flatten\n", "reads private e._flatten"),
    ],
)
def test_each_check_fails_on_a_planted_violation(rel_path, source, expected):
    found = violations(source, rel_path)
    assert len(found) == 1 and expected in found[0], found


def test_allowed_imports_pass():
    ok = ("from data_utils import warp\nfrom .emd import projected_emd\nimport numpy as np\nnp._NoValue\n"
          "from pemd_tutorial import emd\nemd.projected_emd\nself._cache = 1\n")
    assert violations(ok, "pemd_tutorial/mind.py") == []
    # a relative import of a private *module* name that does not exist is not a private name of a module
    assert violations("from ._private_helper import x\n", "pemd_tutorial/figures/base.py") == []


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
