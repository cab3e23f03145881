"""The committed tutorial notebooks follow the house conventions (static checks, no kernel needed).

nbval (in the test command) executes them; these checks cover what execution does not: the
header (badges pointing at this repository, the Colab-only install cell), the configuration cell,
outputs committed and small, no SVG, widget cells never compared, a check closing every section.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    "01_projections.ipynb",
    "02_cumsum_emd.ipynb",
    "03_mono_to_multimodal.ipynb",
    "04_your_own_data.ipynb",
    "05_paper_experiment.ipynb",
}
REPO = "pemd-tutorial/pemd-tutorial"


def _load(name: str) -> dict:
    return json.loads((ROOT / "tutorials" / name).read_text())


def _src(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _compared(cell: dict) -> bool:
    """nbval compares this cell's output: a cell tag, kept out of the code a student reads."""
    return "nbval-check-output" in cell.get("metadata", {}).get("tags", [])


def test_the_four_notebooks_are_there():
    assert NOTEBOOKS <= {p.name for p in (ROOT / "tutorials").glob("*.ipynb")}


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_header_has_title_badges_and_a_colab_only_install_cell(name):
    cells = _load(name)["cells"]
    first = _src(cells[0])
    assert cells[0]["cell_type"] == "markdown" and first.startswith("# ")
    assert f"https://mybinder.org/v2/gh/{REPO}/main?labpath=tutorials%2F{name}" in first
    assert f"https://colab.research.google.com/github/{REPO}/blob/main/tutorials/{name}" in first
    install = _src(cells[1])
    assert 'if "google.colab" in sys.modules:' in install
    # everything that installs is inside the guard (indented below it)
    for line in install.splitlines():
        if "pip" in line and not line.lstrip().startswith("#"):
            assert line.startswith("    "), f"unguarded install line: {line!r}"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_one_configuration_cell_with_quick_mode_device_and_seed(name):
    code = [_src(c) for c in _load(name)["cells"] if c["cell_type"] == "code"]
    config = [c for c in code if "QUICK =" in c]
    assert len(config) == 1, "exactly one configuration cell"
    assert 'os.environ.get("CI")' in config[0] and 'os.environ.get("PEMD_QUICK")' in config[0]
    assert 'DEVICE = "cuda" if torch.cuda.is_available() else "cpu"' in config[0]
    assert "SEED =" in config[0]
    assert not any(".cuda()" in c for c in code)


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_with_outputs_small_and_without_svg(name):
    path = ROOT / "tutorials" / name
    assert path.stat().st_size < 1_000_000
    nb = _load(name)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") is not None for c in code), "commit the executed notebook"
    assert any(o.get("data", {}).get("image/png") for c in code for o in c["outputs"]), "figures kept"
    for c in code:
        for o in c["outputs"]:
            assert "image/svg+xml" not in o.get("data", {})
            assert o.get("output_type") != "error", f"an error output is committed in {name}"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_widget_cells_are_never_compared_and_checks_close_the_sections(name):
    cells = _load(name)["cells"]
    for c in cells:
        src = _src(c)
        if c["cell_type"] == "code" and "interact(" in src:
            assert not _compared(c)
    # every "## " section (and the end of the notebook) is preceded by a code cell with an assert
    starts = [i for i, c in enumerate(cells)
              if c["cell_type"] == "markdown" and re.search(r"^## ", _src(c), re.M)]
    for end in [*starts[1:], len(cells)]:
        start = max(s for s in starts if s < end)
        section = [c for c in cells[start:end] if c["cell_type"] == "code"]
        assert any("assert " in _src(c) for c in section), f"{name}: section up to cell {end} checks nothing"
    assert any(_compared(c) for c in cells), "at least one deterministic, compared print"
    # nbval's markers live in cell tags, never as comments in the code a student reads
    assert not any("NBVAL_" in _src(c) for c in cells)


def test_notebook_01_opens_with_an_angle_slider():
    cells = _load("01_projections.ipynb")["cells"]
    first_interact = next(_src(c) for c in cells if c["cell_type"] == "code" and "interact(" in _src(c))
    assert re.search(r"IntSlider\([^)]*description=\"angle", first_interact)


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_paired_text_twin_is_in_sync(name):
    """The .ipynb and its py:percent twin hold the same cells (edit either, then `make notebooks`)."""
    jupytext = pytest.importorskip("jupytext")
    twin = ROOT / "tutorials" / name.replace(".ipynb", ".py")
    assert twin.is_file(), f"{twin.name} is missing: run `make notebooks`"
    ipynb = jupytext.read(ROOT / "tutorials" / name)
    text = jupytext.read(twin)
    assert ipynb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    pairs = [(a.cell_type, a.source) for a in ipynb.cells]
    twins = [(b.cell_type, b.source) for b in text.cells]
    for k, (a, b) in enumerate(zip(pairs, twins, strict=False)):
        assert a == b, f"{name} cell {k} differs from {twin.name}: run `make notebooks` (jupytext --sync)"
    assert len(pairs) == len(twins), f"{name} has {len(pairs)} cells, {twin.name} {len(twins)}"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_every_widget_has_a_static_figure_after_it(name):
    """Readers on GitHub or nbviewer see no live widget: the next code cell draws a figure."""
    cells = [c for c in _load(name)["cells"] if c["cell_type"] == "code"]
    for k, c in enumerate(cells):
        if "interact(" in _src(c):
            assert k + 1 < len(cells), f"{name}: a widget closes the notebook"
            assert any(o.get("data", {}).get("image/png") for o in cells[k + 1]["outputs"]), (
                f"{name}: the cell after the widget `{_src(c).splitlines()[0]}` draws no static figure"
            )
