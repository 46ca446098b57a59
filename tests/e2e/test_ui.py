"""The web view in a real browser (Debian's chromium, driven by playwright): the
page shows the lab's nodes and pods, a curl between two pods appears in the
flows table and on the map, and a trace lists its steps and draws its path.
On a dual-stack lab the map and the details show both addresses of every pod
and node, and an IPv6 trace is drawn. The tests save screenshots of the page
(tests/artifacts/ui.png, ui-dual.png)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.helpers import podnet

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(lab: str) -> Iterator[str]:
    """`podnet ui` for the lab, on a free port of loopback: its URL."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "podnet", "ui", "--lab", lab, "--port", str(port)],
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
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def chromium():  # type: ignore[no-untyped-def]
    """One browser for the module's pages: Playwright's sync API drives one at a time in a thread."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browsing(browser, url: str):  # type: ignore[no-untyped-def]
    """The page in chromium, once it has drawn the cluster."""
    opened = browser.new_page(viewport={"width": 1500, "height": 900})
    opened.goto(url)
    opened.wait_for_selector("body[data-ready=true]", timeout=15_000)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="module")
def ui(cluster_lab: str) -> Iterator[str]:
    with serving(cluster_lab) as url:
        yield url


@pytest.fixture(scope="module")
def page(chromium, ui: str):  # type: ignore[no-untyped-def]
    with browsing(chromium, ui) as opened:
        yield opened


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


DUAL = "test_obsdual-ui"


@pytest.fixture(scope="module")
def dual_page(chromium, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A dual-stack lab (IPv4 primary, host-gw) and the page of it."""
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "spec": {"nodeName": node, "containers": [
        {"name": "echo", "image": "podnet/echo", "ports": [{"containerPort": 80}]}]}} for pod, node in
        (("a", "n1"), ("b", "n2"))]
    document = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": DUAL},
                "networking": {"ipFamilies": ["IPv4", "IPv6"]}, "nodes": [{"name": "n1"}, {"name": "n2"}],
                "workloads": pods}
    path = tmp_path_factory.mktemp("uidual") / f"{DUAL}.yaml"
    path.write_text(yaml.safe_dump(document))
    podnet("lab", "up", str(path))
    try:
        with serving(DUAL) as url, browsing(chromium, url) as opened:
            yield opened
    finally:
        podnet("lab", "down", DUAL)


def test_a_dual_stack_page_shows_both_addresses_and_draws_an_ipv6_trace(dual_page) -> None:  # type: ignore[no-untyped-def]
    page = dual_page
    label = page.evaluate("cy.getElementById('pod:default/b').data('label')")
    ips = page.evaluate("cy.getElementById('pod:default/b').data('ips')")
    assert len(ips) == 2 and ":" not in ips[0] and ips[1].startswith("fd00:10:244:")
    assert label.splitlines() == ["default/b", *ips]
    node_label = page.evaluate("cy.getElementById('node:n1').data('label')")
    assert node_label.startswith("n1 172.18.") and " fd00:" in node_label  # the node's address in each family
    page.fill("#trace-form input[name=from]", "a")
    page.fill("#trace-form input[name=to]", "b:80")
    page.select_option("#trace-form select[name=family]", "IPv6")
    page.click("#trace-form button")
    page.wait_for_selector("#trace-steps li.deliver", timeout=10_000)
    steps = page.locator("#trace-steps li").all_inner_texts()
    assert ips[1] in steps[-1] and "route fd00:10:244:" in steps[1]  # routed per family, via n2's IPv6 address
    assert page.evaluate("cy.edges('.trace').length") >= 1
    page.evaluate("cy.getElementById('node:n2').emit('tap')")
    page.wait_for_selector("#details dl", timeout=5_000)
    details = page.locator("#details").inner_text()
    assert "fd00:10:244:" in details and "10.244." in details  # both pod subnets, both bridge addresses
    page.fill("#filters input[name=ip]", "fd00::zz")
    page.dispatch_event("#filters input[name=ip]", "change")
    page.wait_for_function("document.getElementById('flows-error').textContent.includes('not an IP address')",
                           timeout=5_000)
    page.fill("#filters input[name=ip]", "fd00:10:244::/56")  # a CIDR of either family is a filter
    page.dispatch_event("#filters input[name=ip]", "change")
    page.wait_for_function("document.getElementById('flows-error').textContent === ''", timeout=5_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-dual.png"), full_page=True)
    assert (ARTIFACTS / "ui-dual.png").stat().st_size > 10_000
