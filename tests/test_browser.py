"""The widget panel in a real browser: Voila serves notebook 06 on 127.0.0.1, Debian's headless
Chromium (driven by Playwright, never `playwright install`) types a prompt, clicks Generate and
waits for the generated text. The screenshot lands in tests/output/."""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = ROOT / "tests" / "output"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila(tmp_path):
    port = _free_port()
    env = dict({k: v for k, v in os.environ.items() if k != "MPLBACKEND"}, HOME=str(tmp_path / "home"), PLOTGPT_SMOKE="1", PLOTGPT_ROOT=str(tmp_path / "root"),
               MPLCONFIGDIR=str(tmp_path / "mpl"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "voila", "notebooks/06_sampling_widgets.ipynb", "--no-browser",
                             f"--port={port}", "--Voila.ip=127.0.0.1", "--VoilaConfiguration.file_allowlist=['.*']"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    yield f"http://127.0.0.1:{port}/", tmp_path
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_widget_panel_generates_text_in_a_real_browser(voila):
    from playwright.sync_api import sync_playwright

    url, tmp = voila
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp / "chromium"), executable_path=CHROMIUM, headless=True, viewport={"width": 1200, "height": 1000},
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        page = ctx.new_page()
        page.goto(url, timeout=240_000)  # Voila runs the whole notebook (smoke size) before it shows the page
        button = page.get_by_role("button", name="Generate")
        button.wait_for(timeout=240_000)
        prompt = page.locator(".widget-textarea textarea").first
        prompt.fill("Title: The Clockmaker's Ghost\nPlot:")
        button.click()
        text = page.locator(".plotgpt-text").last
        page.wait_for_function(
            "() => { const t = [...document.querySelectorAll('.plotgpt-text')].pop();"
            " return t && t.innerText.startsWith(\"Title: The Clockmaker's Ghost\") && t.innerText.length > 60; }",
            timeout=120_000)
        page.get_by_text("done:").first.wait_for(timeout=120_000)
        generated = text.inner_text()
        page.get_by_text("done:").first.scroll_into_view_if_needed()
        page.screenshot(path=str(OUTPUT / "widget-page.png"), full_page=True)
        panel = page.locator(".widget-vbox", has=page.get_by_role("button", name="Generate")).first
        panel.screenshot(path=str(OUTPUT / "widget-panel.png"))
        ctx.close()
    assert generated.startswith("Title: The Clockmaker's Ghost") and len(generated) > 60
    assert (OUTPUT / "widget-panel.png").stat().st_size > 10_000
