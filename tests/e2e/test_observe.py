"""`podnet observe` on the demo cluster: a curl through a Service is recorded with
its service and endpoint pod on the sending node and as delivered on the
receiving one; a port the service lacks is REJECTED with the reason; a
NetworkPolicy drop is DROPPED naming the policy; -f streams new flows; no flow
is lost; and each agent serves its metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import in_netns, podnet, within



def curl(lab: str, url: str) -> subprocess.CompletedProcess[str]:
    return podnet("exec", "--lab", lab, "client", "--", "curl", "-s", "-m", "2", url, check=False)


def service_ip(lab: str) -> str:
    return json.loads(podnet("get", "svc", "web-service", "-n", "apps", "--lab", lab, "-o", "json").stdout)["spec"][
        "clusterIP"]


def flows(lab: str, *filters: str) -> list[dict]:  # type: ignore[type-arg]
    done = podnet("observe", "--lab", lab, "-o", "json", *filters)
    assert "lost" not in done.stderr, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_curl_through_a_service_is_translated_and_delivered(cluster_lab: str) -> None:
    started = time.time()
    assert curl(cluster_lab, f"http://{service_ip(cluster_lab)}/get").returncode == 0

    def seen() -> list[dict]:  # type: ignore[type-arg]
        return [f for f in flows(cluster_lab, "--from-pod", "client", "--service", "apps/web-service")
                if f["time"] >= started - 1 and f["protocol"] == "TCP"]

    assert within(3, lambda: bool(seen()))
    (sent,) = [f for f in seen() if f["verdict"] == "TRANSLATED"]
    assert sent["node"] == "control-plane" and sent["endpoint_pod"].startswith("apps/web-")
    assert sent["destination_port"] == 80 and sent["tcp_flags"] == "SYN" and sent["source_pod"] == "default/client"
    endpoint = sent["endpoint"].rsplit(":", 1)[0]
    delivered = [f for f in flows(cluster_lab, "--to-pod", sent["endpoint_pod"], "--ip", endpoint)
                 if f["source_port"] == sent["source_port"] and f["node"] != "control-plane"]
    assert all(f["verdict"] == "FORWARDED" for f in delivered)  # on the endpoint's node, when it is another


def test_a_port_the_service_lacks_is_rejected_with_the_reason(cluster_lab: str) -> None:
    assert curl(cluster_lab, f"http://{service_ip(cluster_lab)}:81/").returncode != 0
    assert within(3, lambda: any(f["reason"] == "undefined port" and f["destination_port"] == 81
                                 for f in flows(cluster_lab, "--verdict", "rejected", "--last", "20")))


def test_a_policy_drop_names_the_policy(cluster_lab: str, tmp_path: Path) -> None:
    deny = tmp_path / "deny.yaml"
    deny.write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                    "metadata: {name: observed-deny, namespace: apps}\nspec: {podSelector: {}}\n")
    podnet("apply", "--lab", cluster_lab, "-f", str(deny))
    try:
        assert within(5, lambda: curl(cluster_lab, f"http://{service_ip(cluster_lab)}/get").returncode != 0)
        dropped = flows(cluster_lab, "--verdict", "dropped", "-n", "apps", "--last", "20")
        assert any(f["policy"] == "apps/observed-deny (ingress)" and f["source_pod"] == "default/client"
                   and f["destination_pod"].startswith("apps/web-") for f in dropped)
    finally:
        podnet("delete", "--lab", cluster_lab, "-f", str(deny))


def test_follow_streams_new_flows(cluster_lab: str) -> None:
    watcher = subprocess.Popen([sys.executable, "-m", "podnet", "observe", "--lab", cluster_lab, "-f", "-o", "compact",
                                "--from-pod", "client", "--protocol", "tcp"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    try:
        time.sleep(1.0)
        curl(cluster_lab, "http://www.example.org/get")
        time.sleep(1.5)
    finally:
        watcher.terminate()
        out, err = watcher.communicate(timeout=10)
    assert any("default/client" in line and "203.0.113.10:80 TCP TRANSLATED (masqueraded to" in line
               for line in out.splitlines()), out + err


def scrape(lab: str, node: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The node agent's /metrics, parsed as Prometheus parses it: name -> labels -> value."""
    text = in_netns(f"pn-{lab}.{node}", "curl", "-s", "-m", "3", "http://127.0.0.1:10249/metrics").stdout
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_each_agent_serves_its_metrics(cluster_lab: str) -> None:
    before = scrape(cluster_lab, "worker")
    assert {labels[0][1] for labels in before["podnet_sync_duration_seconds_count"]} >= \
        {"network", "proxy", "policy", "flows", "pods"}
    assert before["podnet_cni_operation_duration_seconds_count"][(("command", "ADD"), ("result", "success"))] >= 1
    assert before["podnet_conntrack_entries_limit"][()] > 0 and "podnet_flows_lost_total" in before
    programmed = sum(before.get("podnet_network_programming_duration_seconds_count", {}).values())
    podnet("scale", "--lab", cluster_lab, "deployment/web", "--replicas", "7", "-n", "apps")
    try:
        assert within(10, lambda: sum(scrape(cluster_lab, "worker")
                                      .get("podnet_network_programming_duration_seconds_count", {}).values())
                      > programmed)
    finally:
        podnet("scale", "--lab", cluster_lab, "deployment/web", "--replicas", "6", "-n", "apps")
        assert within(30, lambda: sum(p["metadata"]["name"].startswith("web-") for p in json.loads(
            podnet("get", "pods", "-n", "apps", "--lab", cluster_lab, "-o", "json").stdout)["items"]) == 6)
    assert curl(cluster_lab, f"http://{service_ip(cluster_lab)}/get").returncode == 0
    assert within(3, lambda: scrape(cluster_lab, "control-plane")["podnet_service_connections_total"]
                  .get((("service", "apps/web-service:http"),), 0) >= 1)
