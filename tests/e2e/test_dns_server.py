"""`podnet dns` on its own, in a namespace of its own: the seed's hosts-only
CoreDNS step, and an upstream that sends our queries back to us (a loop)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.kernel import netns
from tests.helpers import in_netns

NAMESPACE = "pn-test_dns"


@pytest.fixture
def dns_namespace() -> Iterator[str]:
    netns.create(NAMESPACE)
    in_netns(NAMESPACE, "ip", "link", "set", "lo", "up")
    yield NAMESPACE
    netns.kill_processes_in([NAMESPACE])
    netns.delete(NAMESPACE)


def start(namespace: str, corefile: Path, log: Path, *options: str) -> subprocess.Popen:  # type: ignore[type-arg]
    """`podnet dns --conf corefile`, or with `options` instead when there are any."""
    argv = [sys.executable, "-m", "podnet", "dns", *(options or ("--conf", str(corefile)))]
    proc = subprocess.Popen(netns.exec_argv(namespace, argv), stdout=subprocess.DEVNULL, stderr=log.open("w"))
    for _ in range(100):
        if "serving" in log.read_text() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, log.read_text()
    return proc


def dig(namespace: str, *args: str) -> str:
    return in_netns(namespace, "dig", "@127.0.0.1", "+time=2", "+tries=1", *args).stdout


def test_the_seeds_corefile_answers_from_a_hosts_file(dns_namespace: str, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("192.168.1.10 web\n192.168.1.11 db\n")
    corefile = tmp_path / "Corefile"
    corefile.write_text(f". {{\n    hosts {hosts}\n}}\n")
    start(dns_namespace, corefile, tmp_path / "dns.log")
    assert dig(dns_namespace, "+short", "web").strip() == "192.168.1.10"
    assert dig(dns_namespace, "+short", "db").strip() == "192.168.1.11"
    assert dig(dns_namespace, "+short", "-x", "192.168.1.11").strip() == "db."
    assert "status: REFUSED" in dig(dns_namespace, "elsewhere.example")  # no upstream to ask


def test_a_forwarding_loop_is_detected_and_not_followed(dns_namespace: str, tmp_path: Path) -> None:
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:53 {\n    forward . 127.0.0.1\n    loop\n    ready 127.0.0.1:8181\n}\n")
    log = tmp_path / "dns.log"
    start(dns_namespace, corefile, log)
    deadline = time.monotonic() + 5
    while "forwarding loop detected" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "forwarding loop detected" in log.read_text()
    ready = in_netns(dns_namespace, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8181/ready")
    assert ready.stdout == "503"
    started = time.monotonic()
    assert "status: SERVFAIL" in dig(dns_namespace, "www.example.org")
    assert time.monotonic() - started < 1  # refused at once, not after circling until a timeout


def test_a_bad_corefile_is_one_line_naming_the_problem(tmp_path: Path) -> None:
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:53 {\n    rewrite name a b\n}\n")
    proc = subprocess.run([sys.executable, "-m", "podnet", "dns", "--conf", str(corefile)], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "line 2: rewrite: unknown plugin" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_burst_from_many_clients_gets_each_its_own_answers(dns_namespace: str, tmp_path: Path) -> None:
    """Queries arrive faster than they are answered, so they are read and answered
    in batches: each reply must still go to its asker, with its ID and its name."""
    hosts = tmp_path / "hosts"
    hosts.write_text("".join(f"10.1.{i // 256}.{i % 256} host{i}\n" for i in range(300)))
    corefile = tmp_path / "Corefile"
    corefile.write_text(f". {{\n    hosts {hosts}\n}}\n")
    start(dns_namespace, corefile, tmp_path / "dns.log")
    script = (
        "import socket, dns.message, collections\n"
        "clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]\n"
        "asked = {}\n"
        "for round in range(2):  # the second round is answered from what the first rendered\n"
        "    for n in range(600):\n"
        "        query = dns.message.make_query(f'host{n % 300}', 'A'); query.id = n\n"
        "        asked[(n % 8, n)] = f'10.1.{n % 300 // 256}.{n % 300 % 256}'\n"
        "        clients[n % 8].sendto(query.to_wire(), ('127.0.0.1', 53))\n"
        "    for c, sock in enumerate(clients):\n"
        "        sock.settimeout(3)\n"
        "        for _ in range(600 // 8):\n"
        "            reply = dns.message.from_wire(sock.recv(512))\n"
        "            assert asked.pop((c, reply.id)) == reply.answer[0][0].address, reply\n"
        "print(len(asked))\n"
    )
    assert in_netns(dns_namespace, sys.executable, "-c", script).stdout.strip() == "0"


def test_the_first_workers_metrics_count_every_workers_queries(dns_namespace: str, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.1.0.1 web\n")
    start(dns_namespace, Path(), tmp_path / "dns.log", "--store", str(tmp_path / "store.db"), "--hosts", str(hosts),
          "--listen", "127.0.0.1", "--metrics", "127.0.0.1:9153", "--workers", "2")
    script = (  # from 400 source ports: the kernel spreads them over both workers
        "import socket, dns.message\n"
        "for n in range(400):\n"
        "    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:\n"
        "        sock.settimeout(2)\n"
        "        sock.sendto(dns.message.make_query('web', 'A').to_wire(), ('127.0.0.1', 53))\n"
        "        assert dns.message.from_wire(sock.recv(512)).answer[0][0].address == '10.1.0.1'\n"
    )
    in_netns(dns_namespace, sys.executable, "-c", script)
    time.sleep(1.5)  # the other worker publishes its tally once a second
    metrics = in_netns(dns_namespace, "curl", "-s", "http://127.0.0.1:9153/metrics").stdout
    server = 'server="dns://127.0.0.1:53"'
    assert f'coredns_dns_requests_total{{family="1",proto="udp",{server},type="A",view="",zone="."}} 400.0' in metrics
    assert f'coredns_dns_responses_total{{plugin="hosts",rcode="NOERROR",{server},view="",zone="."}} 400.0' in metrics


def test_every_worker_stops_at_sigterm(dns_namespace: str, tmp_path: Path) -> None:
    """Each worker's receiving thread must wake for its own socket: with SO_REUSEPORT
    a datagram sent to the port may reach any worker, so none may rely on one."""
    hosts = tmp_path / "hosts"
    hosts.write_text("10.1.0.1 web\n")
    proc = start(dns_namespace, Path(), tmp_path / "dns.log", "--store", str(tmp_path / "store.db"),
                 "--hosts", str(hosts), "--listen", "127.0.0.1", "--workers", "2")
    assert dig(dns_namespace, "+short", "web").strip() == "10.1.0.1"
    proc.terminate()
    assert proc.wait(timeout=5) == 0, (tmp_path / "dns.log").read_text()
    assert netns.processes_in([NAMESPACE]) == []
