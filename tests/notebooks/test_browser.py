"""The learner's first hour in a real browser: JupyterLab on ``labs/`` in headless Chromium, driven by Playwright.

What only a browser shows: the threshold explorer's figure after the browser itself sends widget messages back
(the "go to minimum cost" race that left it blank), whether a cost box is typeset as LaTeX by JupyterLab's MathJax,
and what each lab's first screen looks like (``build/screenshots/``, kept as CI artifacts; look at them).

Chromium is Debian's package (``.ci/run`` installs it), Playwright comes from PyPI and is pointed at it: no browser
download. Without either the test is skipped, unless ``WORKSHOP_BROWSER_REQUIRED=1`` (set by ``.ci/run``) makes that
a failure. Lab 02 runs as a papermill-parameterised copy (``num_round`` 30 instead of 100, the same code) under
``labs/work/browser/``, so JupyterLab's autosave never writes outputs into the committed lab. Every wait is bounded
and names what it waited for.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tools import make_labs, run_workshop

ROOT = Path(__file__).resolve().parents[2]
LABS = ROOT / "labs"
COPIES = LABS / "work" / "browser"
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = Path(os.environ.get("WORKSHOP_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("WORKSHOP_BROWSER_REQUIRED") == "1"
LAB_02_PARAMETERS = {"num_round": 30}
SERVER_START_TIMEOUT = 120.0
RUN_TIMEOUT_MS = 900_000  # running lab 02 up to the explorer, then to its end, on a loaded CI machine
UPDATE_TIMEOUT_MS = 60_000  # one widget update: a kernel round trip and a re-rendered PNG
MIN_DRAWN_PIXELS = 5_000  # the cost figure draws tens of thousands; a blank (transparent) one draws none
IDLE_GRACE_S = 20.0  # the kernel idle this long with the awaited output still missing: the run stopped short

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    missing = _missing()
    if missing and REQUIRED:
        pytest.fail(f"the browser test is required here (WORKSHOP_BROWSER_REQUIRED=1): {missing}", pytrace=False)
    if missing:
        pytest.skip(missing)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _copy_labs() -> None:
    """Every lab as it is, and lab 02 with its parameters injected as papermill would, under labs/work/browser/.

    Papermill's way: an ``injected-parameters`` cell right after the ``parameters`` cell overrides its values.
    """
    shutil.rmtree(COPIES, ignore_errors=True)
    COPIES.mkdir(parents=True)
    for lab in sorted(LABS.glob(make_labs.NOTEBOOK_GLOB)):
        nb = make_labs.read_notebook(lab)
        if lab.stem == "02_training":
            at = next(i for i, c in enumerate(nb.cells) if "parameters" in make_labs.tags_of(c))
            source = "\n".join(f"{name} = {value!r}" for name, value in LAB_02_PARAMETERS.items())
            nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, id="injected-parameters",
                                                              metadata={"tags": ["injected-parameters"]}))
        (COPIES / lab.name).write_text(make_labs.notebook_text(nb), encoding="utf-8")


@pytest.fixture(scope="module")
def jupyterlab(browser_ready: None, emulator_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab on labs/ (token-less, 127.0.0.1, a free port) with this venv's kernel; its URL."""
    _copy_labs()
    settings = tmp_path_factory.mktemp("lab-settings")
    for plugin, values in {"apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                           # every cell in the DOM, so locators find cells scrolled out of view
                           "notebook-extension/tracker": {"windowingMode": "none"}}.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path_factory.mktemp("lab-workspaces")))
    before = os.environ.get("JUPYTER_PATH")
    run_workshop.ensure_kernelspec(ROOT / "build")  # this interpreter as the kernel, first in JUPYTER_PATH
    env["JUPYTER_PATH"] = os.environ["JUPYTER_PATH"]
    if before is None:  # ensure_kernelspec edits this process's environment: give it back as it was
        os.environ.pop("JUPYTER_PATH")
    else:
        os.environ["JUPYTER_PATH"] = before
    port = _free_port()
    log = (tmp_path_factory.mktemp("lab-log") / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--ServerApp.port={port}",
         "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
         "--ServerApp.port_retries=0", f"--ServerApp.root_dir={LABS}", "--MappingKernelManager.default_kernel_name="
         + run_workshop.KERNEL_NAME],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {url} within {SERVER_START_TIMEOUT:.0f} s "
                                f"(exit {server.poll()}); see {log.name}", pytrace=False)
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(jupyterlab: str) -> Iterator[Any]:
    """Debian's Chromium, headless, as Playwright's browser (``--no-sandbox``: CI runs as root)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = chromium.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(UPDATE_TIMEOUT_MS)
            yield context
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab per test, closed without JupyterLab's "leave this page?" prompt (which would cancel a goto)."""
    tab = browser.new_page()
    yield tab
    tab.close(run_before_unload=False)


@contextlib.contextmanager
def screenshot_on_failure(page: Any, name: str) -> Iterator[None]:
    """A failed step leaves what the browser showed at that moment, next to the other screenshots."""
    try:
        yield
    except BaseException:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"FAILED-{name}.png"))
        raise


def open_notebook(page: Any, url: str, name: str) -> Any:
    """Open labs/work/browser/<name> and wait until its kernel is idle; the notebook panel's locator."""
    # ?reset: a fresh workspace, so a notebook opened before is not restored in front of this one
    page.goto(f"{url}/lab/tree/work/browser/{name}?reset", timeout=UPDATE_TIMEOUT_MS)
    # the status bar names the current notebook in full (the window title cuts long names short)
    page.wait_for_function("name => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                           ".some(e => e.textContent.trim() === name)", arg=name, timeout=UPDATE_TIMEOUT_MS)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Cell").first.wait_for(timeout=UPDATE_TIMEOUT_MS)
    wait_for_kernel_idle(page)
    return panel


def wait_for_kernel_idle(page: Any, timeout_ms: int = UPDATE_TIMEOUT_MS) -> None:
    """The status bar reads "<kernel> | Idle": the kernel has started (or finished what it was running)."""
    page.wait_for_function("() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                           ".some(e => e.textContent.includes('| Idle'))", timeout=timeout_ms)


def kernel_is_idle(page: Any) -> bool:
    return bool(page.evaluate("() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                              ".some(e => e.textContent.includes('| Idle'))"))


def wait_for_output(page: Any, target: Any, what: str, timeout_ms: int = RUN_TIMEOUT_MS,
                    idle_grace_s: float = IDLE_GRACE_S) -> None:
    """Wait for ``target`` to appear while cells run; fail at once, naming why, if the run stops short of it.

    Why not ``target.wait_for(timeout=…)``: when a cell raises, JupyterLab stops the queue and the kernel goes
    idle, and a plain wait would then sit out its whole budget (15 minutes) before saying anything. Idle for
    ``IDLE_GRACE_S`` with ``target`` still absent is that case (queued cells keep the kernel busy between them);
    the failure quotes the last error output the learner would see.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    idle_since: float | None = None
    while target.count() == 0:
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(f"{what} did not appear within {timeout_ms / 1000:.0f} s while the cells ran")
        if kernel_is_idle(page):
            idle_since = idle_since or now
            if now - idle_since > idle_grace_s:
                errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
                last = errors.last.inner_text()[-1500:] if errors.count() else "(no error output on the page)"
                raise AssertionError(f"the kernel went idle without {what}; the last error output:\n{last}")
        else:
            idle_since = None
        time.sleep(1)


def run_menu(page: Any, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def drawn_pixels(element: Any) -> int:
    """Pixels of an element's screenshot that are not page background: what the learner actually sees drawn."""
    from matplotlib import image as mpimg

    shot = mpimg.imread(io.BytesIO(element.screenshot()), format="png")[..., :3]
    return int((shot.min(axis=-1) < 0.9).sum())


def image_src(image: Any) -> str:
    return str(image.get_attribute("src") or "")


def test_lab_first_screens(browser: Any, jupyterlab: str) -> None:
    """Each lab's first screen as a learner first sees it, kept under build/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for lab in sorted(COPIES.glob(make_labs.NOTEBOOK_GLOB)):
        page = browser.new_page()
        try:
            with screenshot_on_failure(page, lab.stem):
                panel = open_notebook(page, jupyterlab, lab.name)
                panel.locator(".jp-MarkdownCell").first.wait_for()
                page.screenshot(path=str(SCREENSHOTS / f"{lab.stem}.png"))
                assert panel.locator(".jp-Cell").count() > 5
        finally:
            page.close(run_before_unload=False)


def test_a_run_that_stops_short_fails_at_once_with_its_error(page: Any, jupyterlab: str) -> None:
    """``wait_for_output``'s own proof: a cell that raises stops Run All, and the wait says so within seconds,
    quoting the error, instead of sitting out its 15 minutes."""
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("raise ValueError('the cell a learner broke')"),
        nbformat.v4.new_code_cell("print('the output never reached')"),
    ])
    # the labs' kernelspec: without one, JupyterLab asks which kernel to start instead of starting it
    notebook.metadata = make_labs.read_notebook(LABS / "00_setup.ipynb").metadata
    (COPIES / "stops_short.ipynb").write_text(make_labs.notebook_text(notebook), encoding="utf-8")
    panel = open_notebook(page, jupyterlab, "stops_short.ipynb")
    run_menu(page, "Run All Cells")
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        wait_for_output(page, panel.locator(".jp-OutputArea-output", has_text="the output never reached"),
                        "the second cell's output", idle_grace_s=3)
    took = time.monotonic() - started
    assert "went idle without the second cell's output" in str(failure.value)
    assert "the cell a learner broke" in str(failure.value), "the failure must quote the error the learner sees"
    assert took < 60, f"the wait took {took:.0f} s to notice the run had stopped"


def test_threshold_explorer_and_cost_box_in_jupyterlab(page: Any, jupyterlab: str) -> None:
    with screenshot_on_failure(page, "lab02"):
        drive_lab_02(page, jupyterlab)


def drive_lab_02(page: Any, jupyterlab: str) -> None:
    """Lab 02 to the explorer, every control pressed, then to its end and its cost box."""
    started = time.monotonic()
    panel = open_notebook(page, jupyterlab, "02_training.ipynb")
    cell = panel.locator(".jp-CodeCell", has_text="widgets.threshold_explorer(").first
    cell.locator(".jp-InputArea").click()
    run_menu(page, "Run All Above Selected Cell")
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    explorer = cell.locator(".jp-OutputArea .widget-vbox").first
    wait_for_output(page, explorer.locator("img.widget-image"), "the threshold explorer's figure")
    image = explorer.locator("img.widget-image")
    print(f"lab 02 ran to the threshold explorer in {time.monotonic() - started:.0f} s")
    assert drawn_pixels(image) > MIN_DRAWN_PIXELS, "the explorer's first figure is blank"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    explorer.screenshot(path=str(SCREENSHOTS / "02_threshold_explorer.png"))

    def after(action: str, do: Any) -> None:
        before = image_src(image)
        do()
        page.wait_for_function("([img, src]) => img.src && img.src !== src", arg=[image.element_handle(), before],
                               timeout=UPDATE_TIMEOUT_MS)
        time.sleep(0.5)  # let a snapped-back value's second update land too, as a learner would see it
        assert drawn_pixels(image) > MIN_DRAWN_PIXELS, f"the figure is blank after {action}"

    handle = explorer.locator(".widget-slider .noUi-handle").first
    after("moving the slider right", lambda: (handle.focus(), page.keyboard.press("ArrowRight")))
    after("moving the slider left", lambda: (handle.focus(), page.keyboard.press("ArrowLeft")))
    boxes = explorer.locator(".widget-text input")
    assert boxes.count() == 3, "three cost inputs (wasted call, missed subscriber, gain per subscriber)"
    for index, value in enumerate(("2", "8", "1")):
        after(f"typing {value} in cost input {index + 1}", lambda index=index, value=value: (
            boxes.nth(index).fill(value), boxes.nth(index).press("Enter")))
    button = explorer.locator("button", has_text="go to minimum cost")
    assert button.evaluate("b => b.scrollWidth <= b.clientWidth"), "the button's label is cut"
    after("go to minimum cost", button.click)
    after("moving the slider after go to minimum cost", lambda: (handle.focus(), page.keyboard.press("ArrowRight")))
    after("go to minimum cost again", button.click)
    explorer.screenshot(path=str(SCREENSHOTS / "02_threshold_explorer_after.png"))

    # The rest of the lab, to its cost box: typeset as LaTeX it would hold MathJax (or KaTeX) elements.
    cell.locator(".jp-InputArea").click()
    run_menu(page, "Run Selected Cell and All Below")
    box = panel.locator(".workshop-cost-box").first
    wait_for_output(page, panel.locator(".workshop-cost-box"), "lab 02's cost box")
    box.scroll_into_view_if_needed()
    box.screenshot(path=str(SCREENSHOTS / "02_cost_box.png"))
    maths = box.locator("mjx-container, .MathJax, .MathJax_Preview, .katex, math")
    assert maths.count() == 0, "the cost box was typeset as maths"
    assert "$0." in box.inner_text() and "$/h" in box.inner_text()
    print(f"lab 02 in the browser, explorer and cost box included: {time.monotonic() - started:.0f} s")
