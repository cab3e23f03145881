"""Helpers for the end-to-end JupyterLab test: a loopback-only JupyterLab server and headless Chromium.

The browser test (``tests/test_browser.py``) does what a user does: it starts ``jupyter lab`` on
``127.0.0.1`` with a random token, opens a notebook in Debian's Chromium driven by Playwright, runs
all cells from the *Run* menu, looks for errors, finds the ``ipywidgets`` sliders and moves one with
the keyboard. The helpers here are plain functions on a Playwright ``Page`` so that each step can be
tested on small notebooks written by the tests themselves.

Isolation: the server gets fresh Jupyter config/data/runtime/settings/workspace folders, so the
user's settings are neither read nor written; its settings switch off news, update checks,
autosave and notifications. Chromium gets a fresh profile, the flags from the issue, and every
request it makes to a host other than loopback is aborted and recorded (the test asserts that the
record stays empty).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

CHROMIUM = Path(os.environ.get("PEMD_CHROMIUM", "/usr/bin/chromium"))
LOOPBACK = "127.0.0.1"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-proxy-server",
    # Any host name other than localhost fails to resolve: nothing leaves the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
)
# The notebook in the current (visible) tab; hidden tabs keep their cells in the DOM.
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
VIEWPORT = {"width": 1280, "height": 800}

# Lab settings written into the server's private settings folder (JUPYTERLAB_SETTINGS_DIR).
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # All cells stay attached to the DOM, so every prompt and output can be inspected.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # Never write the notebooks back (the test works on copies anyway).
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # No news feed, no update check, no toasts over the notebook.
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
}

# A line of IPython's error display: "ZeroDivisionError   Traceback (most recent call last)",
# or the last line "NameError: name 'x' is not defined" / "SyntaxError: invalid syntax".
_TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)|^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b:?",
    re.MULTILINE,
)
# What ipywidgets / JupyterLab show in place of a widget or output they could not render.
_WIDGET_ERROR = re.compile(r"^(Error displaying widget|Error rendering output item)", re.MULTILINE)
_PROMPT_DONE = re.compile(r"^\[\d+\]:$")


def chromium_available() -> bool:
    """Whether the Chromium binary the test drives (``PEMD_CHROMIUM`` or ``/usr/bin/chromium``) exists."""
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _local_opener() -> urllib.request.OpenerDirector:
    # No proxy: requests to the loopback server must never go through http_proxy.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---------------------------------------------------------------------------------------------
# The JupyterLab server
# ---------------------------------------------------------------------------------------------


@dataclass
class LabServer:
    """A running ``jupyter lab`` process.

    Attributes:
        base_url: ``http://127.0.0.1:<port>/``.
        token: The random token that authenticates every request.
        root_dir: The folder the server serves (the notebooks' copies).
        process: The server process (leader of its own process group).
        log_path: File with the server's stdout and stderr.
        kernels: Kernel processes seen so far, by pid (``psutil.Process`` objects: signalling them
            later cannot hit another process that reused the pid).
    """

    base_url: str
    token: str
    root_dir: Path
    process: subprocess.Popen
    log_path: Path
    kernels: dict[int, psutil.Process] = field(default_factory=dict)

    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
        """Call the server's REST API (``path`` without a leading slash) and return decoded JSON."""
        req = urllib.request.Request(
            self.base_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method in ("POST", "DELETE") else None,
        )
        with _local_opener().open(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def lab_url(self, relpath: str) -> str:
        """URL that opens ``relpath`` (relative to ``root_dir``) in JupyterLab, token included."""
        # ``reset`` starts from an empty workspace: notebooks opened earlier are not restored.
        return f"{self.base_url}lab/tree/{relpath}?reset&token={self.token}"

    def log_tail(self, n_chars: int = 4000) -> str:
        """The last ``n_chars`` characters of the server log (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""

    def shutdown_kernels(self) -> None:
        """Shut down every kernel of the server (frees CPU and memory between notebooks)."""
        for kernel in self.api("api/kernels"):
            self.kernels.update(child_processes(self.process.pid))
            self.api(f"api/kernels/{kernel['id']}", method="DELETE")


def child_processes(pid: int) -> dict[int, psutil.Process]:
    """All descendants of process ``pid`` (the server's kernels), by pid; empty if it is gone."""
    try:
        return {p.pid: p for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return {}


def kernel_processes(pid: int) -> dict[int, psutil.Process]:
    """The live kernel processes among the descendants of ``pid`` (``ipykernel`` in the command line).

    The server also starts short-lived helpers; one that has just exited is a zombie until it is
    reaped, and asking it for its environment raises. Those are left out, so a caller can wait for
    the kernel without racing them.
    """
    found = {}
    for child_pid, proc in child_processes(pid).items():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(proc.cmdline()):
                found[child_pid] = proc
        except psutil.Error:  # gone (or a zombie) between the listing and the question
            continue
    return found


def write_lab_settings(settings_dir: Path, settings: dict[str, dict[str, Any]] = LAB_SETTINGS) -> None:
    """Write JupyterLab user settings (``<plugin id>.jupyterlab-settings`` files) into ``settings_dir``."""
    for plugin, values in settings.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))


def start_lab(
    root_dir: Path, work_dir: Path, env: dict[str, str] | None = None, timeout: float = 90.0
) -> LabServer:
    """Start ``jupyter lab`` on 127.0.0.1 with a random token and wait until it answers.

    Args:
        root_dir: Folder served by JupyterLab (notebook paths are relative to it).
        work_dir: Empty folder for the server's private Jupyter folders and its log.
        env: Extra environment variables for the server and its kernels (e.g. ``PEMD_QUICK=1``).
        timeout: Seconds to wait for the server to answer ``/api/status``.

    Returns:
        The running server. Stop it with :func:`stop_lab` (or use :func:`running_lab`).

    Raises:
        ValueError: If ``root_dir`` is not a folder or ``timeout`` is not positive.
        RuntimeError: If the server exits or does not answer within ``timeout``.
    """
    root_dir, work_dir = Path(root_dir), Path(work_dir)
    if not root_dir.is_dir():
        raise ValueError(f"root_dir must be an existing folder, got {root_dir!s}")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    work_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(24)
    port = free_port()
    folders = {
        name: work_dir / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")
    }
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    write_lab_settings(folders["settings"])
    server_env = dict(os.environ)
    server_env.update(
        JUPYTER_CONFIG_DIR=str(folders["config"]),
        JUPYTER_DATA_DIR=str(folders["data"]),
        JUPYTER_RUNTIME_DIR=str(folders["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(folders["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(folders["workspaces"]),
        IPYTHONDIR=str(folders["ipython"]),
        JUPYTER_PLATFORM_DIRS="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        server_env.pop(name, None)
    server_env.update(env or {})
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        f"--ip={LOOPBACK}",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners often run as root
    log_path = work_dir / "jupyter-lab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd, cwd=root_dir, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(f"http://{LOOPBACK}:{port}/", token, root_dir, process, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            server.api("api/status", timeout=2.0)
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            if time.monotonic() > deadline:
                stop_lab(server)
                log = server.log_tail()
                raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{log}") from None
            time.sleep(0.25)


def stop_lab(server: LabServer, timeout: float = 15.0) -> None:
    """Stop the server and its kernels: the REST shutdown first, then SIGTERM, then SIGKILL.

    Kernels run in their own process groups, so their process ids are collected (while the server
    lives) and each is ended by id if it outlives the server.
    """
    kernels = {**server.kernels, **child_processes(server.process.pid)}
    if server.process.poll() is None:
        try:
            server.api("api/shutdown", method="POST", timeout=5.0)
            server.process.wait(timeout=timeout)
        except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
            pass
    if server.process.poll() is None:
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(server.process.pid, sig)
                server.process.wait(timeout=wait)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
    for proc in kernels.values():
        try:
            proc.terminate()  # psutil refuses if the pid now belongs to another process
            proc.wait(timeout=3)
        except psutil.TimeoutExpired:
            proc.kill()
        except psutil.Error:
            pass


@contextmanager
def running_lab(root_dir: Path, work_dir: Path, env: dict[str, str] | None = None) -> Iterator[LabServer]:
    """Context manager around :func:`start_lab` / :func:`stop_lab`; stops the server also on errors."""
    server = start_lab(root_dir, work_dir, env=env)
    try:
        yield server
    finally:
        stop_lab(server)


# ---------------------------------------------------------------------------------------------
# Watching the processes' sockets
# ---------------------------------------------------------------------------------------------


def _is_loopback_ip(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1") or ip.startswith("::ffff:127.")


def outside_connections(pids: set[int]) -> set[tuple[int, str, str]]:
    """Internet sockets of the processes ``pids`` whose remote end is not loopback.

    Returns:
        ``(pid, process name, "ip:port")`` for each such socket (listening sockets have no remote end
        and are not counted).
    """
    found = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except psutil.Error:
            continue
        for conn in conns:
            if conn.raddr and not _is_loopback_ip(conn.raddr.ip):
                found.add((pid, name, f"{conn.raddr.ip}:{conn.raddr.port}"))
    return found


class SocketWatch:
    """Samples, in a background thread, the sockets of a process tree; records non-loopback peers.

    Used around the browser test: the tree is the test process (Playwright's driver and Chromium
    are its children) and the JupyterLab server (whose kernels are its children).

    Args:
        roots: Process ids whose whole tree is watched.
        interval: Seconds between two samples.
    """

    def __init__(self, roots: list[int], interval: float = 0.2) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.roots = list(roots)
        self.interval = interval
        self.seen: set[tuple[int, str, str]] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="socket-watch", daemon=True)

    def _tree(self) -> set[int]:
        pids = set()
        for root in self.roots:
            try:
                proc = psutil.Process(root)
                pids.add(root)
                pids.update(p.pid for p in proc.children(recursive=True))
            except psutil.Error:
                continue
        return pids

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen |= outside_connections(self._tree())
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> SocketWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# ---------------------------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------------------------


@dataclass
class Browser:
    """A Playwright persistent context on a fresh Chromium profile, plus what it tried to reach.

    Attributes:
        context: The Playwright ``BrowserContext``.
        blocked: ``(url, resource type)`` of each request to a host other than loopback (all aborted).
    """

    context: Any
    blocked: list[tuple[str, str]] = field(default_factory=list)


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome", "devtools"):
        return True
    return parts.hostname in (LOOPBACK, "localhost")


@contextmanager
def chromium(playwright: Any, profile_dir: Path) -> Iterator[Browser]:
    """Launch headless Chromium (``/usr/bin/chromium``) with a fresh profile in ``profile_dir``.

    Every request whose host is not loopback is aborted and recorded in ``Browser.blocked``.

    Raises:
        ValueError: If ``profile_dir`` exists and is not empty (the profile must be fresh).
    """
    profile_dir = Path(profile_dir)
    if profile_dir.exists() and any(profile_dir.iterdir()):
        raise ValueError(f"profile_dir must be a new or empty folder, got {profile_dir!s}")
    profile_dir.mkdir(parents=True, exist_ok=True)
    context = playwright.chromium.launch_persistent_context(
        str(profile_dir),
        executable_path=str(CHROMIUM),
        headless=True,
        args=list(CHROMIUM_ARGS),
        viewport=VIEWPORT,
        device_scale_factor=1,
    )
    browser = Browser(context)

    def guard(route: Any) -> None:
        if _is_local(route.request.url):
            route.continue_()
        else:
            browser.blocked.append((route.request.url, route.request.resource_type))
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    try:
        yield browser
    finally:
        context.close()


# ---------------------------------------------------------------------------------------------
# Steps on a notebook page
# ---------------------------------------------------------------------------------------------


def kernel_status(page: Any) -> str:
    """The kernel status that the status bar shows, lower case (``idle``, ``busy``...).

    Returns ``""`` while the notebook has no kernel yet (the toolbar's indicator reads ``idle``
    even then, so the status bar text ``"Python 3 (ipykernel) | Idle"`` is used instead).
    """
    for text in page.locator(".jp-StatusBar-TextItem").all_inner_texts():
        name, sep, status = text.strip().rpartition(" | ")
        if sep and name and name != "No Kernel":
            return status.strip().lower()
    return ""


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll ``predicate()`` until it returns a truthy value; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def open_notebook(page: Any, server: LabServer, relpath: str, timeout: float = 120.0) -> None:
    """Open ``relpath`` in JupyterLab and wait until all its cells show and its kernel is idle.

    Raises:
        ValueError: If ``relpath`` is not a notebook file under the server's root folder.
    """
    path = server.root_dir / relpath
    if path.suffix != ".ipynb" or not path.is_file():
        raise ValueError(f"relpath must name a notebook under {server.root_dir!s}, got {relpath!r}")
    n_cells = len(json.loads(path.read_text())["cells"])
    page.goto(server.lab_url(relpath), wait_until="domcontentloaded", timeout=timeout * 1000)
    wait_for(
        lambda: page.locator(f"{NOTEBOOK} .jp-Cell").count() == n_cells,
        timeout,
        f"the {n_cells} cells of {relpath} to show",
    )
    wait_for(lambda: kernel_status(page) == "idle", timeout, f"the kernel of {relpath} to be idle")


def _code_prompts(page: Any) -> list[str]:
    return [t.strip() for t in page.locator(f"{NOTEBOOK} .jp-CodeCell .jp-InputPrompt").all_inner_texts()]


def click_menu(page: Any, menu: str, item: str) -> None:
    """Click ``item`` in the menu-bar menu ``menu`` (e.g. ``"Run"``, ``"Run All Cells"``)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def run_all_cells(page: Any, timeout: float = 600.0) -> list[str]:
    """Clear all outputs, run all cells from the menu bar and wait until they are done.

    As a user would: *Edit > Clear Outputs of All Cells* (so that outputs saved in the file cannot
    pass for new ones), then *Run > Run All Cells*. Done means: the kernel is idle and no code cell
    shows ``[*]`` (a cell after a failing one keeps an empty prompt; see :func:`unexecuted_cells`).

    Args:
        page: Playwright page showing the notebook (opened with :func:`open_notebook`).
        timeout: Seconds to wait for all cells to finish.

    Returns:
        The input prompts of the code cells, in order (``"[1]:"``, ``"[ ]:"``...).

    Raises:
        ValueError: If ``timeout`` is not positive.
        TimeoutError: If the cells do not start within 30 s or finish within ``timeout``.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    click_menu(page, "Edit", "Clear Outputs of All Cells")
    wait_for(lambda: all(p in ("[ ]:", "") for p in _code_prompts(page)), 30.0, "the prompts to clear")
    click_menu(page, "Run", "Run All Cells")

    # Queued cells show [*] at once; wait for work to begin before waiting for it to end.
    def started() -> bool:
        prompts = _code_prompts(page)
        return not prompts or any(p == "[*]:" or _PROMPT_DONE.match(p) for p in prompts)

    wait_for(started, 30.0, "the first cell to start")

    def finished() -> bool:
        return kernel_status(page) == "idle" and "[*]:" not in _code_prompts(page)

    # Idle must hold twice in a row: between two queued cells the kernel may be idle for a moment.
    wait_for(lambda: finished() and (time.sleep(0.5) or finished()), timeout, "all cells to finish")
    return _code_prompts(page)


def unexecuted_cells(page: Any) -> list[int]:
    """Indices (among code cells, from 0) of cells that have no execution count after running."""
    return [i for i, p in enumerate(_code_prompts(page)) if not _PROMPT_DONE.match(p)]


def cell_errors(page: Any) -> list[tuple[int, str]]:
    """Error outputs shown in the notebook, as ``(code cell index, text)``.

    An output counts as an error when JupyterLab renders it as standard error
    (``data-mime-type="application/vnd.jupyter.stderr"``, which holds both tracebacks and
    ``sys.stderr`` text) and its text looks like a Python traceback or exception line. Warnings
    and progress bars on stderr are therefore not errors. Outputs that failed to render (ipywidgets
    shows "Error displaying widget", JupyterLab "Error rendering output item") count as errors too.
    """
    found = page.evaluate(
        """(sel) => Array.from(document.querySelectorAll(sel + ' .jp-CodeCell')).flatMap((cell, i) =>
            Array.from(cell.querySelectorAll('.jp-OutputArea-output')).map(
                el => [i, el.getAttribute('data-mime-type') || '', el.innerText]))""",
        NOTEBOOK,
    )
    errors = []
    for index, mime, text in found:
        if mime == "application/vnd.jupyter.stderr" and _TRACEBACK.search(text):
            errors.append((index, text))
        elif _WIDGET_ERROR.search(text):
            errors.append((index, text))
    return errors


def sliders(page: Any) -> Any:
    """Locator of the visible ``ipywidgets`` slider views (horizontal ``IntSlider``/``FloatSlider``...)."""
    return page.locator(f"{NOTEBOOK} .widget-hslider:visible")


def cells_with_sliders(page: Any) -> list[int]:
    """Indices (among code cells, from 0) of the cells whose output shows a visible slider."""
    return page.evaluate(
        """(sel) => Array.from(document.querySelectorAll(sel + ' .jp-CodeCell')).flatMap((cell, i) =>
            Array.from(cell.querySelectorAll('.jp-OutputArea .widget-hslider')).some(
                el => el.offsetWidth > 0 && el.offsetHeight > 0) ? [i] : [])""",
        NOTEBOOK,
    )


def slider_with_description(page: Any, pattern: str) -> Any:
    """The first visible slider whose description label matches the regular expression ``pattern``.

    Raises:
        ValueError: If ``pattern`` is empty.
        LookupError: If no visible slider has such a description.
    """
    if not pattern:
        raise ValueError("pattern must be a non-empty regular expression")
    regex = re.compile(pattern, re.IGNORECASE)
    all_sliders = sliders(page)
    for i in range(all_sliders.count()):
        slider = all_sliders.nth(i)
        label = slider.locator(".widget-label").first
        if label.count() and regex.search(label.inner_text()):
            return slider
    raise LookupError(f"no visible slider whose description matches {pattern!r}")


def slider_readout(slider: Any) -> str:
    """The value shown next to a slider (its readout text)."""
    return slider.locator(".widget-readout").first.inner_text().strip()


def press_slider(slider: Any, key: str = "ArrowRight", times: int = 3) -> None:
    """Focus the slider's handle and press ``key`` ``times`` times, as a keyboard user does.

    Raises:
        ValueError: If ``times`` is not a positive integer.
    """
    if not isinstance(times, int) or times < 1:
        raise ValueError(f"times must be a positive integer, got {times!r}")
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(times):
        handle.press(key)


def output_image_of(slider: Any) -> Any:
    """Locator of the plotted image that belongs to a slider's ``interact`` (or, failing that, its cell)."""
    interact = slider.locator("xpath=ancestor::*[contains(concat(' ', @class, ' '), ' widget-interact ')][1]")
    if interact.count():
        return interact.locator(".widget-output img").last
    cell = slider.locator("xpath=ancestor::*[contains(concat(' ', @class, ' '), ' jp-CodeCell ')][1]")
    return cell.locator(".jp-OutputArea-output img").last


def image_source(image: Any) -> str:
    """The ``src`` of an image locator, or ``""`` when the image is not (yet) in the page."""
    if image.count() == 0:
        return ""
    return image.get_attribute("src") or ""


def settled_screenshot(image: Any, path: Path, timeout: float = 30.0,
                       settle: float = 1.0) -> tuple[str, bytes]:
    """Screenshot a plot once it has stopped changing: ``(its src, the PNG bytes)``.

    An ``interact`` output replaces its ``<img>`` at every redraw, and redraws queued by several
    key presses can land after the first change is seen; a screenshot of an element that is
    replaced meanwhile fails with "not attached to the DOM". So: wait until the image's ``src`` has
    stayed the same for ``settle`` seconds, take the screenshot, and start over if the element was
    replaced during it. Raises ``TimeoutError`` after ``timeout`` seconds.
    """
    if timeout <= 0 or settle <= 0:
        raise ValueError(f"timeout and settle must be > 0, got {timeout!r}, {settle!r}")
    deadline = time.monotonic() + timeout
    while time.monotonic() <= deadline:
        src = image_source(image)
        time.sleep(settle)
        if not src or image_source(image) != src:
            continue
        try:
            return src, image.screenshot(path=str(path), timeout=5000)
        except Exception as err:  # playwright's Error: the image was replaced during the screenshot
            if "not attached" not in str(err) and "detached" not in str(err):
                raise
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for the plot to settle")


def markdown_links(notebook: Path) -> set[str]:
    """The ``http(s)`` addresses written in a notebook's markdown cells (badges, references)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return set(re.findall(r"https?://[^\s)\"'<>\]]+", text))


def unexpected_requests(blocked: list[tuple[str, str]], allowed_images: set[str]) -> list[tuple[str, str]]:
    """Blocked requests other than images that the notebooks' markdown itself links to.

    A rendered markdown cell makes the browser ask for its images (e.g. the Binder and Colab
    badges); those requests are aborted like every other non-loopback one, and they are expected.
    Anything else (JupyterLab asking for news, a widget loading code from a CDN) is not.
    """
    return [(url, kind) for url, kind in blocked if not (kind == "image" and url in allowed_images)]
