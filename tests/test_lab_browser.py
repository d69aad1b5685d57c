"""The lab edition as a reader sees it (`make lab`): JupyterLab from this environment, headless,
with a chapter of the edition open in Chromium, driven over its DevTools protocol; the chapter
runs (MFBOOK_SMOKE=1) and the rendered cells are read back. Skipped without Chromium.

What a reader must see: numbers where the book glues them (before the run, a placeholder, never
the markup), each exercise with its solution folded, and author-year citations.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_book import CHROMIUM, needs_chromium

from mfbook import lab

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "01_spike_slab.ipynb"  # short to run, with glued numbers, exercises and citations
RAW = ("{glue", "{cite", "{eval}", "{numref}", "{doc}", "solution-start", "solution-end")
#: Every cell of the open notebook as the reader has it: source, metadata, rendered text, folds
CELLS_JS = """jupyterapp.shell.currentWidget.content.widgets.map(cell => ({
    type: cell.model.type,
    source: cell.model.sharedModel.getSource(),
    expressions: cell.model.getMetadata('user_expressions') || [],
    text: cell.node.innerText,
    hidden: cell.isHidden,
    collapsed: cell.model.type === 'markdown' && cell.headingCollapsed,
    exercise: !!cell.node.querySelector('.myst-exercise'),
}))"""

#: Whether jupyterlab-myst has rendered every markdown cell
RENDERED_JS = """jupyterapp.shell.currentWidget.content.widgets.every(
    cell => cell.model.type !== 'markdown' || cell.node.querySelector('.myst'))"""


class DevTools:
    """One page of a headless Chromium, over the DevTools protocol (JSON over a websocket)."""

    def __init__(self, profile: Path, url: str):
        self.browser = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                # offline: no host but the local server resolves
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--window-size=1400,1000",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        _until(lambda: port_file.is_file() and port_file.read_text().strip(), 30, "DevTools")
        port = port_file.read_text().split()[0]
        pages = _until(lambda: _pages(port), 30, "a page target")
        import websocket

        self.socket = websocket.create_connection(pages[0], timeout=120, suppress_origin=True)
        self.ids = itertools.count(1)

    def eval(self, js: str):
        """The value of the JavaScript expression ``js`` (a promise is awaited)."""
        ident = next(self.ids)
        params = {"expression": js, "awaitPromise": True, "returnByValue": True}
        self.socket.send(json.dumps({"id": ident, "method": "Runtime.evaluate", "params": params}))
        while (reply := json.loads(self.socket.recv())).get("id") != ident:
            pass
        result = reply.get("result", {})
        if "exceptionDetails" in result or "error" in reply:
            raise RuntimeError(f"{js[:80]}: {result.get('exceptionDetails') or reply['error']}")
        return result["result"].get("value")

    def close(self):
        self.socket.close()
        self.browser.terminate()
        self.browser.wait(timeout=30)


def _pages(port: str) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as reply:
        targets = json.load(reply)
    return [t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"]


def _until(check, seconds: float, what: str):
    """The first true value of ``check()`` (errors count as false), polled for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if value := check():
                return value
        except Exception:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"no {what} after {seconds} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab from this environment on a free port of 127.0.0.1, serving the lab edition,
    with a token and its own settings (every cell rendered at once, no update check); yields
    the chapter's URL."""
    root = tmp_path / "lab"
    lab.build(ROOT / "book", root, log=None)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "MFBOOK_SMOKE": "1",
        "OMP_NUM_THREADS": "1",
    }
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1"),
            *(f"--ServerApp.port={port}", "--ServerApp.port_retries=0"),
            *(f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"),
            *("--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True"),
            f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _until(
            lambda: (
                (server.poll() is None or pytest.fail("JupyterLab exited"))
                and urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).status
                == 200
            ),
            60,
            "JupyterLab",
        )
        yield f"{base}/lab/tree/{CHAPTER}?token={token}"
    except TimeoutError:
        pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text())
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


@needs_chromium
def test_a_chapter_reads_properly_in_jupyterlab(jupyterlab, tmp_path):
    browser = DevTools(tmp_path / "profile", jupyterlab)
    try:
        _until(
            lambda: browser.eval(
                "!!(window.jupyterapp?.shell.currentWidget?.context.isReady"
                " && jupyterapp.shell.currentWidget.sessionContext.session?.kernel)"
            ),
            90,
            "open notebook with a kernel",
        )
        _until(lambda: browser.eval(RENDERED_JS), 60, "rendered markdown cells")
        before = browser.eval(CELLS_JS)
        assert browser.eval(
            "jupyterapp.commands.execute('notebook:run-all-cells').then(done => done)"
        ), "the chapter did not run to the end"
        # the results reach the text a moment after the run: wait for the placeholders to go
        settled = (
            f"jupyterapp.shell.currentWidget.content.widgets.every(cell => !cell.model"
            f".getMetadata('user_expressions') || !cell.node.innerText.includes('{lab.PENDING}'))"
        )
        with contextlib.suppress(TimeoutError):  # the assertions below say what is left
            _until(lambda: browser.eval(settled), 30, "results in the text")
        after = browser.eval(CELLS_JS)
    finally:
        browser.close()

    markdown = [cell for cell in after if cell["type"] == "markdown"]
    # the markup never shows, before the run or after
    for cell in [c for c in before if c["type"] == "markdown"] + markdown:
        assert not [raw for raw in RAW if raw in cell["text"]], cell["text"][:300]
    assert any(lab.PENDING in c["text"] for c in before if c["expressions"])

    # a number: each expression now holds the formatted value, and the text shows it
    one_decimal = next(
        c for c in markdown if any("'.1f')" in e["expression"] for e in c["expressions"])
    )
    values = [
        e["result"]["data"]["text/plain"]
        for e in one_decimal["expressions"]
        if "'.1f')" in e["expression"]
    ]
    assert values and all(re.fullmatch(r"-?[\d,]*\d\.\d", v) for v in values), values
    assert all(v in one_decimal["text"] for v in values)
    assert not any("not glued yet" in c["text"] for c in markdown)
    pending = [c for c in markdown if c["expressions"] and lab.PENDING in c["text"]]
    assert not pending, [(c["text"][:300], c["expressions"], c["hidden"]) for c in pending]

    # an exercise, and below it its solution: a folded heading over the solution's cells
    first = next(i for i, c in enumerate(after) if c["exercise"])
    assert after[first]["text"].lstrip().startswith("Exercise 1")
    heading = after[first + 1]
    assert heading["text"].startswith("Solution to Exercise 1") and heading["collapsed"]
    assert re.search(r"\d+ cells? hidden", heading["text"])
    assert after[first + 2]["hidden"] and not after[first]["hidden"]

    # citations as author-year text
    assert any("[Li and Huang, 2020]" in c["text"] for c in markdown)
