"""Binder's environment.yml must agree with pyproject.toml and cover what the notebooks import.

No conda is available here, so these checks are static: the file parses, pins Python, uses only
conda-forge, installs this repository through its pip section, and every dependency carries the
same version range as in pyproject.toml (under its conda-forge name).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
tomllib = pytest.importorskip("tomllib")
from packaging.requirements import Requirement  # noqa: E402
from packaging.specifiers import SpecifierSet  # noqa: E402
from packaging.version import Version  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# PyPI distribution name -> conda-forge package name (where they differ).
PYPI_TO_CONDA = {"torch": "pytorch", "matplotlib": "matplotlib-base", "pot": "pot", "simpleitk": "simpleitk"}
# import name -> PyPI distribution name (where they differ).
MODULE_TO_PYPI = {"ot": "pot", "yaml": "pyyaml", "IPython": "ipykernel", "sklearn": "scikit-learn"}
# Modules of this repository and those that come with Jupyter itself.
LOCAL_MODULES = {"pemd_tutorial", "data_utils", "google"}


def _env() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _split_conda_spec(spec: str) -> tuple[str, str]:
    """``"numpy>=1.24"`` -> ``("numpy", ">=1.24")``; ``"python=3.11"`` -> ``("python", "=3.11")``."""
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    if m is None:
        raise ValueError(f"not a conda match spec: {spec!r}")
    return m.group(1).lower(), m.group(2).replace(" ", "")


def _conda_deps() -> dict[str, str]:
    out = {}
    for dep in _env()["dependencies"]:
        if isinstance(dep, str):
            name, spec = _split_conda_spec(dep)
            out[name] = spec
    return out


def _pip_entries() -> list[str]:
    for dep in _env()["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return [str(x) for x in dep["pip"]]
    return []


def _pyproject_requirements(*extras: str) -> list[Requirement]:
    project = _pyproject()["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return [r for r in reqs if r.name.lower() != "pemd-tutorial"]


def test_environment_parses_with_name_and_conda_forge_only():
    env = _env()
    assert env["name"] == "pemd-tutorial"
    assert env["channels"] == ["conda-forge"]


def test_python_is_pinned_and_allowed_by_requires_python():
    spec = _conda_deps()["python"]
    m = re.fullmatch(r"=(\d+\.\d+)", spec)
    assert m, f"python must be pinned as python=X.Y, got {spec!r}"
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert Version(m.group(1)) in requires


def test_pip_section_installs_this_repository_with_an_existing_extra():
    entries = _pip_entries()
    local = [e for e in entries if re.fullmatch(r"(-e\s+)?\.(\[[a-z,\-]+\])?", e)]
    assert len(local) == 1, f"the pip section must install the repository once, got {entries}"
    extras = re.findall(r"\[([a-z,\-]+)\]", local[0])
    known = set(_pyproject()["project"]["optional-dependencies"])
    for extra in (extras[0].split(",") if extras else []):
        assert extra in known, f"extra {extra!r} is not defined in pyproject.toml"


@pytest.mark.parametrize("extras", [("notebooks",)])
def test_every_runtime_and_notebook_dependency_has_the_same_range(extras):
    conda = _conda_deps()
    for req in _pyproject_requirements(*extras):
        name = PYPI_TO_CONDA.get(req.name.lower(), req.name.lower())
        assert name in conda, f"{req.name} (pyproject) is missing from environment.yml as {name!r}"
        assert SpecifierSet(conda[name]) == req.specifier, (
            f"{name}: environment.yml has {conda[name]!r}, pyproject.toml has {str(req.specifier)!r}"
        )


def test_conda_packages_are_all_declared_in_pyproject_with_the_same_range():
    declared = {
        PYPI_TO_CONDA.get(r.name.lower(), r.name.lower()): r.specifier
        for r in _pyproject_requirements("notebooks", "test")
    }
    for name, spec in _conda_deps().items():
        if name in ("python", "pip"):
            continue
        assert name in declared, f"{name} is in environment.yml but in no pyproject.toml list"
        assert SpecifierSet(spec) == declared[name], f"{name}: {spec!r} != {str(declared[name])!r}"


def test_no_binder_folder_shadows_the_root_environment():
    # repo2docker ignores root-level files when a binder/ (or .binder/) folder exists.
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()


def _notebook_imports(path: Path) -> set[str]:
    nb = json.loads(path.read_text())
    names: set[str] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        # IPython magics and shell escapes are not Python: drop those lines before parsing.
        src = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_everything_the_notebooks_import_is_in_the_environment():
    notebooks = sorted((ROOT / "tutorials").glob("*.ipynb"))
    if not notebooks:
        pytest.skip("no notebooks yet")
    conda = set(_conda_deps())
    for nb in notebooks:
        for module in _notebook_imports(nb):
            if module in sys.stdlib_module_names or module in LOCAL_MODULES:
                continue
            pypi = MODULE_TO_PYPI.get(module, module).lower()
            conda_name = PYPI_TO_CONDA.get(pypi, pypi)
            assert conda_name in conda, f"{nb.name} imports {module!r}, which environment.yml lacks"


def test_split_conda_spec_rejects_garbage():
    with pytest.raises(ValueError, match="conda match spec"):
        _split_conda_spec("  >=1.0")
