"""The web view in a real browser (Debian's chromium, driven by playwright): the
page shows the lab's nodes and pods, a curl between two pods appears in the
flows table and on the map, and a trace lists its steps and draws its path.
The test saves a screenshot of the page (tests/artifacts/ui.png)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import podnet

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ui(cluster_lab: str) -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "podnet", "ui", "--lab", cluster_lab, "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"podnet ui did not start: {server.communicate()[0]}")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def page(ui: str):  # type: ignore[no-untyped-def]
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        opened = browser.new_page(viewport={"width": 1500, "height": 900})
        opened.goto(ui)
        opened.wait_for_selector("body[data-ready=true]", timeout=15_000)
        yield opened
        browser.close()


def test_the_page_shows_the_nodes_and_pods(page) -> None:  # type: ignore[no-untyped-def]
    ids = set(page.evaluate("cy.nodes().map(n => n.id())"))
    assert {"node:control-plane", "node:worker", "node:worker2"} <= ids
    assert "pod:default/client" in ids and "svc:apps/web-service" in ids
    assert sum(1 for i in ids if i.startswith("pod:apps/web-")) >= 6  # and any still terminating
    assert page.evaluate("cy.getElementById('pod:default/client').parent().id()") == "node:control-plane"


def test_a_curl_between_pods_appears_as_a_flow(cluster_lab: str, page) -> None:  # type: ignore[no-untyped-def]
    target = page.evaluate("cy.nodes().filter(n => n.id().startsWith('pod:apps/web-') && n.data('ready')).first().id()")
    pod, address = target[len("pod:"):], page.evaluate(f"cy.getElementById('{target}').data('ip')")
    matching = (f"[...document.querySelectorAll('#flows tbody tr')].map(row => row.innerText).filter(text => "
                f"text.includes('default/client') && text.includes('{pod}:80') && text.includes('FORWARDED')).length")
    before = page.evaluate(matching)  # the lab is shared: earlier tests' flows are in the table too
    assert podnet("exec", "--lab", cluster_lab, "client", "--", "curl", "-s", "-m", "3", f"http://{address}/get",
                  check=False).returncode == 0
    page.wait_for_function(f"{matching} > {before}", timeout=10_000)
    edges = page.evaluate("cy.edges().map(e => [e.source().id(), e.target().id()])")
    assert ["pod:default/client", target] in edges


def test_a_trace_lists_its_steps_and_draws_its_path(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#trace-form input[name=from]", "client")
    page.fill("#trace-form input[name=to]", "apps/svc/web-service:80")
    page.click("#trace-form button")
    page.wait_for_selector("#trace-steps li.deliver", timeout=10_000)
    steps = page.locator("#trace-steps li").all_inner_texts()
    assert steps[0].startswith("send: pod default/client") and sum("service:" in s for s in steps) == 6
    assert page.evaluate("cy.edges('.trace').length") >= 6
    page.evaluate("cy.getElementById('pod:default/client').emit('tap')")
    page.wait_for_selector("#details dl", timeout=5_000)
    assert "10.244." in page.locator("#details").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)
    assert (ARTIFACTS / "ui.png").stat().st_size > 10_000
