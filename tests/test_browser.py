"""End-to-end test of the tutorials in JupyterLab, in headless Chromium (issue 6).

What a user does, on this machine and on loopback only: ``jupyter lab`` is started on 127.0.0.1
with a random token over a temporary copy of ``tutorials/``; each notebook is opened in Chromium
(driven by Playwright), its outputs are cleared and all cells are run from the *Run* menu; the test
checks that every code cell ran, that no cell shows an error, that the ``ipywidgets`` sliders render
and, in the 1D-projections notebook, that moving the projection-angle slider with the keyboard
changes the plotted figure. Screenshots go to ``test-artifacts/browser/``.

The harness is first checked on small notebooks written here (one that must pass, some that must
fail), so that each check is known to be able to fail.

Needs Debian's ``chromium`` (``scripts/install_browser.sh``, which ``make test`` runs first). Without
it these tests are skipped, except under CI (``CI`` set), where they fail.

Environment:
    PEMD_BROWSER_NOTEBOOK_TIMEOUT: seconds allowed for running one tutorial (default 480).
    PEMD_UPDATE_README_SCREENSHOT=1: also write the README screenshot
        ``docs/img/jupyterlab_walkthrough.png`` from the 1D-projections notebook.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import browser_utils as bu
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts" / "browser"
README_SCREENSHOT = ROOT / "docs" / "img" / "jupyterlab_walkthrough.png"
NOTEBOOK_TIMEOUT = float(os.environ.get("PEMD_BROWSER_NOTEBOOK_TIMEOUT", "480"))
ANGLE_PATTERN = r"angle"  # the 1D-projections notebook's slider description contains this word
FIXTURES = "fixtures"  # sub-folder of the served root with the notebooks written by these tests


def _require_chromium() -> None:
    if bu.chromium_available():
        return
    message = f"{bu.CHROMIUM} not found: run `bash scripts/install_browser.sh` (make test does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# ---------------------------------------------------------------------------------------------
# Small notebooks written by the tests
# ---------------------------------------------------------------------------------------------

SLIDER_PLOT = """\
import matplotlib.pyplot as plt
from ipywidgets import interact


def show(angle=10):
    fig, ax = plt.subplots(figsize=(3, 2), dpi=60)
    ax.plot([0, 1], [0, angle])
    ax.set_ylim(0, 90)
    plt.show()


interact(show, angle=(0, 90, 5));"""


def _notebook(*sources: str) -> dict[str, Any]:
    cells = [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}
        for src in sources
    ]
    cells.insert(0, {"cell_type": "markdown", "metadata": {}, "source": "# A test notebook"})
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


FIXTURE_NOTEBOOKS = {
    # Passes: stderr text and a warning are not errors; one slider moves a plot.
    "good.ipynb": _notebook(
        "import sys, warnings\nprint('hello')\n"
        "print('progress 50%', file=sys.stderr)\nwarnings.warn('just a warning')",
        SLIDER_PLOT,
        "print('the end')",
    ),
    # Fails the slider check: the plot ignores the slider, so moving it changes nothing.
    "frozen_plot.ipynb": _notebook(SLIDER_PLOT.replace("[0, angle]", "[0, 10]")),
    # Fail the error check: a runtime error in the middle (later cells never run), a syntax error
    # in the last cell, and a widget whose front-end model does not exist.
    "runtime_error.ipynb": _notebook("x = 1", "1 / 0", "print('never printed')"),
    "syntax_error.ipynb": _notebook("x = 1", "def broken(:\n    pass"),
    "broken_widget.ipynb": _notebook(
        "from IPython.display import display\n"
        "display({'application/vnd.jupyter.widget-view+json':"
        " {'model_id': 'no-such-model', 'version_major': 2, 'version_minor': 0}}, raw=True)"
    ),
}


# ---------------------------------------------------------------------------------------------
# Fixtures: one server and one browser for the module, a fresh page per test
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary root folder: a copy of ``tutorials/`` (never written back) plus the test notebooks."""
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copytree(
        ROOT / "tutorials",
        root / "tutorials",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
    )
    (root / FIXTURES).mkdir()
    for name, nb in FIXTURE_NOTEBOOKS.items():
        (root / FIXTURES / name).write_text(json.dumps(nb, indent=1))
    return root


@pytest.fixture(scope="module")
def lab(served_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[bu.LabServer]:
    _require_chromium()
    work = tmp_path_factory.mktemp("lab-work")
    with bu.running_lab(served_root, work, env={"PEMD_QUICK": "1"}) as server:
        yield server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.log_path, ARTIFACTS / "jupyter-lab.log")


@pytest.fixture(scope="module")
def browser(lab: bu.LabServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[bu.Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        with bu.chromium(playwright, tmp_path_factory.mktemp("chromium-profile") / "profile") as br:
            yield br


@pytest.fixture(scope="module")
def sockets(lab: bu.LabServer, browser: bu.Browser) -> Iterator[bu.SocketWatch]:
    """Watches the sockets of this process's children (Playwright, Chromium) and of the server's tree."""
    with bu.SocketWatch([os.getpid(), lab.process.pid], interval=0.5) as watch:
        yield watch


@pytest.fixture
def page(browser: bu.Browser, lab: bu.LabServer, sockets: bu.SocketWatch) -> Iterator[Any]:
    """A new tab; its kernels are shut down afterwards; nothing may have left loopback.

    Requests to other hosts than loopback are all aborted (see ``bu.chromium``); afterwards the
    only ones allowed to have been attempted are the images that the notebooks' markdown links to.
    No process of the browser, the server or its kernels may have held a socket to another host.
    """
    tab = browser.context.new_page()
    tab.set_default_timeout(60_000)
    yield tab
    tab.close()
    lab.shutdown_kernels()
    allowed = set().union(*(bu.markdown_links(nb) for nb in lab.root_dir.rglob("*.ipynb")))
    unexpected = bu.unexpected_requests(browser.blocked, allowed)
    assert unexpected == [], f"the browser tried to reach non-loopback addresses: {unexpected}"
    assert sockets.samples > 0
    assert sockets.seen == set(), f"sockets to non-loopback hosts: {sorted(sockets.seen)}"


@contextmanager
def screenshot_on_failure(page: Any, name: str) -> Iterator[None]:
    """Save ``test-artifacts/browser/FAILED-<name>.png`` when the block raises, then re-raise."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(ARTIFACTS / f"FAILED-{name}.png"))
        except Exception as exc:  # a crashed page must not hide the original failure
            print(f"no failure screenshot for {name}: {exc}")
        raise


# ---------------------------------------------------------------------------------------------
# Steps shared by the fixture notebooks and the tutorials
# ---------------------------------------------------------------------------------------------


def _shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def _move_slider_and_check_plot(page: Any, pattern: str, name: str, redraw_timeout: float = 60.0) -> Any:
    """Press ArrowRight on the slider matching ``pattern``; assert its value and its plot change."""
    slider = bu.slider_with_description(page, pattern)
    slider.scroll_into_view_if_needed()
    image = bu.output_image_of(slider)
    bu.wait_for(lambda: bu.image_source(image), 30.0, "the slider's plot")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    src_before, png_before = bu.settled_screenshot(image, ARTIFACTS / f"{name}-plot-before.png")
    value_before = bu.slider_readout(slider)

    bu.press_slider(slider, "ArrowRight", times=3)
    bu.wait_for(lambda: bu.slider_readout(slider) != value_before, 10.0, "the slider's value to change")
    bu.wait_for(
        lambda: (s := bu.image_source(image)) and s != src_before and s, redraw_timeout, "the plot to change"
    )
    bu.wait_for(lambda: bu.kernel_status(page) == "idle", 60.0, "the kernel to be idle after the redraw")
    src_after, png_after = bu.settled_screenshot(image, ARTIFACTS / f"{name}-plot-after.png")
    assert src_after != src_before
    assert png_after != png_before, "the plot's pixels did not change when the slider moved"
    assert bu.cell_errors(page) == []
    return slider


# ---------------------------------------------------------------------------------------------
# Tests without a browser: argument checks and the set-up script
# ---------------------------------------------------------------------------------------------


def test_start_lab_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root_dir"):
        bu.start_lab(tmp_path / "missing", tmp_path / "work")
    with pytest.raises(ValueError, match="timeout"):
        bu.start_lab(tmp_path, tmp_path / "work", timeout=0)


def test_page_helpers_reject_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "old").write_text("x")
    with pytest.raises(ValueError, match="profile_dir"):
        with bu.chromium(None, tmp_path / "profile"):
            pass
    server = bu.LabServer("http://127.0.0.1:1/", "t", tmp_path, None, tmp_path / "log")  # type: ignore[arg-type]
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="relpath"):
        bu.open_notebook(None, server, "notes.txt")
    with pytest.raises(ValueError, match="relpath"):
        bu.open_notebook(None, server, "missing.ipynb")
    with pytest.raises(ValueError, match="timeout"):
        bu.run_all_cells(None, timeout=-1)
    with pytest.raises(ValueError, match="pattern"):
        bu.slider_with_description(None, "")
    with pytest.raises(ValueError, match="times"):
        bu.press_slider(None, times=0)
    with pytest.raises(ValueError, match="settle"):
        bu.settled_screenshot(None, tmp_path / "x.png", settle=0)


def test_traceback_pattern_tells_errors_from_other_stderr() -> None:
    assert bu._TRACEBACK.search("ZeroDivisionError      Traceback (most recent call last)\nCell In[3]")
    assert bu._TRACEBACK.search(
        "  Cell In[2], line 1\n    def broken(:\n               ^\nSyntaxError: invalid syntax"
    )
    assert bu._TRACEBACK.search("KeyboardInterrupt: ")
    assert not bu._TRACEBACK.search(
        "/tmp/x.py:3: UserWarning: just a warning\n  warnings.warn('just a warning')"
    )
    assert not bu._TRACEBACK.search("train:  50%|#####     | 5/10 [00:01<00:01, 4.9it/s]")


def test_only_markdown_images_may_ask_for_other_hosts(tmp_path: Path) -> None:
    badge = "https://mybinder.org/badge_logo.svg"
    nb = _notebook("x = 1")
    nb["cells"][0]["source"] = f"# Title\n[![Binder]({badge})](https://mybinder.org/v2/gh/x/y)"
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    allowed = bu.markdown_links(tmp_path / "nb.ipynb")
    assert badge in allowed
    assert bu.unexpected_requests([(badge, "image")], allowed) == []
    news = ("https://jupyterlab.github.io/assets/feed.xml", "fetch")
    assert bu.unexpected_requests([news, (badge, "script")], allowed) == [news, (badge, "script")]
    assert bu.unexpected_requests([("https://example.org/x.png", "image")], allowed) != []


def test_socket_watch_sees_a_connection_off_loopback_and_not_one_on_it() -> None:
    # A UDP "connection" sets a remote end without sending anything (TEST-NET-1 documentation address).
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as outside,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as local,
    ):
        try:
            outside.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("no route for a non-loopback address on this machine")
        local.connect(("127.0.0.1", 9))
        seen = bu.outside_connections({os.getpid()})
        assert {peer for _, _, peer in seen} == {"192.0.2.1:9"}
    with pytest.raises(ValueError, match="interval"):
        bu.SocketWatch([os.getpid()], interval=0)


def test_loopback_addresses_only() -> None:
    assert bu._is_local("http://127.0.0.1:8888/lab?token=x")
    assert bu._is_local("data:image/png;base64,AAAA")
    assert not bu._is_local("https://jupyterlab.github.io/assets/feed.xml")
    assert not bu._is_local("http://10.0.0.1/")
    assert any(a.startswith("--host-resolver-rules=MAP * ~NOTFOUND") for a in bu.CHROMIUM_ARGS)


def test_install_browser_script_is_quick_when_chromium_is_there() -> None:
    _require_chromium()
    start = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "scripts/install_browser.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "already installed" in done.stdout
    assert time.monotonic() - start < 10.0


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop to nobody")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_install_browser_script_without_root_explains_and_skips_but_fails_under_ci(tmp_path: Path) -> None:
    # Run as "nobody" (the script is fed on stdin: pytest's temporary folders are private to root).
    def run(**extra: str) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PEMD_CHROMIUM": str(tmp_path / "none"),
               **extra}
        return subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-s"],
            input=(ROOT / "scripts/install_browser.sh").read_text(),
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
        )

    laptop = run()  # no root, not CI: one clear line, and `make test` goes on
    assert laptop.returncode == 0
    assert "needs root" in laptop.stderr and "will be skipped" in laptop.stderr
    assert "apt-get install" in laptop.stderr
    ci = run(CI="true")  # under CI a browser that cannot be installed is a failure
    assert ci.returncode == 1 and "needs root" in ci.stderr


def _alive(proc: Any) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_lab_server_needs_the_token_and_stops_cleanly_also_on_failure(tmp_path: Path) -> None:

    (tmp_path / "root").mkdir()
    with pytest.raises(RuntimeError, match="a failing test"):
        with bu.running_lab(tmp_path / "root", tmp_path / "work", env={"PEMD_QUICK": "1"}) as server:
            assert server.base_url.startswith("http://127.0.0.1:")
            assert server.api("api/status")["kernels"] == 0
            with pytest.raises(urllib.error.HTTPError) as denied:
                bu._local_opener().open(server.base_url + "api/contents", timeout=5)
            assert denied.value.code == 403
            settings = server.api("lab/api/settings/@jupyterlab/docmanager-extension:plugin")
            assert json.loads(settings["raw"])["autosave"] is False
            news = server.api("lab/api/settings/@jupyterlab/apputils-extension:notification")
            assert json.loads(news["raw"])["fetchNews"] == "false"
            assert server.api("lab/api/update")["notification"] is None  # no update check
            server.api("api/kernels", method="POST")  # a kernel, as a notebook would start
            kernels = bu.wait_for(lambda: bu.kernel_processes(server.process.pid), 30.0, "the kernel process")
            assert all(proc.environ().get("PEMD_QUICK") == "1" for proc in kernels.values())
            raise RuntimeError("a failing test")
    assert server.process.poll() is not None
    assert not any(_alive(proc) for proc in kernels.values()), "a kernel outlived the server"
    port = int(server.base_url.rsplit(":", 1)[1].strip("/"))
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the server still listens after stop_lab"


# ---------------------------------------------------------------------------------------------
# The harness on notebooks written here: it passes what must pass and catches what must fail
# ---------------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
def test_harness_passes_a_good_notebook_and_sees_the_slider_move_the_plot(
    page: Any, lab: bu.LabServer
) -> None:
    with screenshot_on_failure(page, "fixture-good"):
        _check_good_notebook(page, lab)


def _check_good_notebook(page: Any, lab: bu.LabServer) -> None:
    bu.open_notebook(page, lab, f"{FIXTURES}/good.ipynb")
    prompts = bu.run_all_cells(page, timeout=120)
    assert prompts == ["[1]:", "[2]:", "[3]:"]
    assert bu.unexecuted_cells(page) == []
    assert bu.cell_errors(page) == []
    assert bu.sliders(page).count() == 1
    assert bu.cells_with_sliders(page) == slider_cells(lab.root_dir / FIXTURES / "good.ipynb") == [1]
    slider = _move_slider_and_check_plot(page, ANGLE_PATTERN, "fixture-good")
    assert bu.slider_readout(slider) == "25"  # 10 + 3 steps of 5
    with pytest.raises(LookupError):
        bu.slider_with_description(page, "no such slider")


@pytest.mark.browser
@pytest.mark.slow
def test_harness_catches_a_slider_that_does_not_change_the_plot(page: Any, lab: bu.LabServer) -> None:
    with screenshot_on_failure(page, "fixture-frozen_plot"):
        bu.open_notebook(page, lab, f"{FIXTURES}/frozen_plot.ipynb")
        bu.run_all_cells(page, timeout=120)
        assert bu.cell_errors(page) == []
        with pytest.raises(TimeoutError, match="the plot to change"):
            _move_slider_and_check_plot(page, ANGLE_PATTERN, "fixture-frozen_plot", redraw_timeout=10.0)


@pytest.mark.parametrize(
    ("name", "failing_cell", "unexecuted", "expected"),
    [
        ("runtime_error.ipynb", 1, [2], "ZeroDivisionError"),
        ("syntax_error.ipynb", 1, [], "SyntaxError"),
        ("broken_widget.ipynb", 0, [], "Error displaying widget"),
    ],
)
@pytest.mark.browser
@pytest.mark.slow
def test_harness_catches_a_failing_notebook(
    page: Any, lab: bu.LabServer, name: str, failing_cell: int, unexecuted: list[int], expected: str
) -> None:
    with screenshot_on_failure(page, f"fixture-{Path(name).stem}"):
        bu.open_notebook(page, lab, f"{FIXTURES}/{name}")
        bu.run_all_cells(page, timeout=120)
        errors = bu.wait_for(lambda: bu.cell_errors(page), 15.0, "the error to show")
        assert [index for index, _ in errors] == [failing_cell]
        assert expected in errors[0][1]
        assert bu.unexecuted_cells(page) == unexecuted


# ---------------------------------------------------------------------------------------------
# The tutorials
# ---------------------------------------------------------------------------------------------


def slider_cells(notebook: Path) -> list[int]:
    """Indices (among code cells) of the cells that show a slider: ``interact(...)``, ``...Slider(...)``."""
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    pattern = re.compile(r"\binteract(ive)?\s*\(|Slider\s*\(")
    return [i for i, c in enumerate(cells) if pattern.search("".join(c["source"]))]


def _save_readme_screenshot(page: Any, slider: Any) -> None:
    """Screenshot of the walkthrough with the angle slider and its plot in view (PNG, < 300 KB).

    Always written to ``test-artifacts/browser/walkthrough.png``; with
    ``PEMD_UPDATE_README_SCREENSHOT=1`` also to ``docs/img/jupyterlab_walkthrough.png`` (palette PNG).
    """
    from PIL import Image

    page.keyboard.press("Escape")
    bu.click_menu(page, "View", "File Browser")  # hide the file browser: more room for the notebook
    cell = slider.locator("xpath=ancestor::*[contains(concat(' ', @class, ' '), ' jp-Cell ')][1]")
    # Show the cell with the slider from its top, with the markdown cell before it if all still fits.
    cell.evaluate("el => (el.previousElementSibling || el).scrollIntoView({block: 'start'})")
    box = cell.bounding_box()
    if box is None or box["y"] + box["height"] > bu.VIEWPORT["height"] - 30:
        cell.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)
    time.sleep(0.5)
    png = page.screenshot()
    (ARTIFACTS / "walkthrough.png").write_bytes(png)
    if os.environ.get("PEMD_UPDATE_README_SCREENSHOT") == "1":
        image = Image.open(io.BytesIO(png)).convert("RGB")
        image = image.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        image.save(README_SCREENSHOT, optimize=True)
        assert README_SCREENSHOT.stat().st_size < 300_000


def test_the_walkthrough_has_the_projection_notebook_with_an_angle_slider() -> None:
    projections = [nb for nb in TUTORIALS if nb.name.startswith("01_")]
    assert len(projections) == 1, f"expected one tutorials/01_*.ipynb, found {TUTORIALS}"
    assert slider_cells(projections[0]), "the 1D-projections notebook has no slider cell"
    assert ANGLE_PATTERN in projections[0].read_text(), "no slider description with the word 'angle'"


@pytest.mark.parametrize("notebook", TUTORIALS, ids=[p.stem for p in TUTORIALS])
@pytest.mark.browser
@pytest.mark.slow
def test_tutorial_runs_in_jupyterlab(page: Any, lab: bu.LabServer, notebook: Path) -> None:
    start = time.monotonic()
    copy = (lab.root_dir / "tutorials" / notebook.name).read_bytes()
    with screenshot_on_failure(page, notebook.stem):
        _check_tutorial(page, lab, notebook)
    print(f"{notebook.name}: {time.monotonic() - start:.1f} s in JupyterLab")
    # The browser saved nothing (autosave is off); the repository's file is never served at all.
    assert (lab.root_dir / "tutorials" / notebook.name).read_bytes() == copy


def _check_tutorial(page: Any, lab: bu.LabServer, notebook: Path) -> None:
    relpath = f"tutorials/{notebook.name}"
    bu.open_notebook(page, lab, relpath)
    _shot(page, f"{notebook.stem}-opened")
    bu.run_all_cells(page, timeout=NOTEBOOK_TIMEOUT)
    _shot(page, f"{notebook.stem}-ran")
    assert bu.cell_errors(page) == [], f"{notebook.name} shows errors"
    assert bu.unexecuted_cells(page) == [], f"{notebook.name}: code cells left unexecuted"
    expected = slider_cells(notebook)
    bu.wait_for(
        lambda: set(expected) <= set(bu.cells_with_sliders(page)), 30.0, f"sliders in cells {expected}"
    )
    if notebook.name.startswith("01_"):
        slider = _move_slider_and_check_plot(page, ANGLE_PATTERN, notebook.stem)
        _save_readme_screenshot(page, slider)
    assert bu.cell_errors(page) == []
