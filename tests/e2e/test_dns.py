"""Cluster DNS in the demo cluster, asked with dig from a pod, as in the seed:
`curl http://web-service.apps` just works."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import in_netns, podnet

CLIENT = "default.client"


def dig(lab: str, *args: str) -> str:
    return in_netns(f"pn-{lab}.{CLIENT}", "dig", "+time=2", "+tries=2", *args).stdout


def service_ip(lab: str, name: str, namespace: str) -> str:
    return podnet("get", "svc", name, "-n", namespace, "--lab", lab, "-o", "jsonpath={.spec.clusterIP}").stdout.strip()


CASES = {
    "service A": (["+short", "web-service.apps.svc.cluster.local"], lambda lab: service_ip(lab, "web-service", "apps")),
    "case-insensitive": (["+short", "WEB-SERVICE.Apps.Svc.Cluster.Local"], lambda lab: service_ip(lab, "web-service", "apps")),
    "search path from resolv.conf": (["+short", "+search", "web-service.apps"], lambda lab: service_ip(lab, "web-service", "apps")),
    "dns-version TXT": (["+short", "TXT", "dns-version.cluster.local"], lambda lab: '"1.1.0"'),
    "SRV of a named port": (["+short", "SRV", "_http._tcp.web-service.apps.svc.cluster.local"],
                            lambda lab: "0 100 80 web-service.apps.svc.cluster.local."),
    "PTR of the ClusterIP": (["+short", "-x", "10.96.0.10"], lambda lab: "kube-dns.kube-system.svc.cluster.local."),
    "over TCP": (["+short", "+tcp", "kube-dns.kube-system.svc.cluster.local"], lambda lab: "10.96.0.10"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_dns_case(cluster_lab: str, case: str) -> None:
    args, expected = CASES[case]
    assert dig(cluster_lab, *args).strip() == expected(cluster_lab)


def test_nxdomain_and_nodata_carry_the_soa(cluster_lab: str) -> None:
    out = dig(cluster_lab, "nope.apps.svc.cluster.local")
    assert "status: NXDOMAIN" in out and "SOA" in out and "flags: qr aa" in out
    out = dig(cluster_lab, "AAAA", "web-service.apps.svc.cluster.local")
    assert "status: NOERROR" in out and "ANSWER: 0" in out and "SOA" in out


def test_axfr_is_refused(cluster_lab: str) -> None:
    assert "Transfer failed" in dig(cluster_lab, "AXFR", "cluster.local")


def test_pods_reach_services_by_name(cluster_lab: str) -> None:
    answer = json.loads(in_netns(f"pn-{cluster_lab}.{CLIENT}", "curl", "-s", "-m", "3", "http://web-service.apps/").stdout)
    assert answer["pod"].startswith("web-")
    same_namespace = in_netns(f"pn-{cluster_lab}.apps.web-1", "curl", "-s", "-m", "3", "http://web-service/").stdout
    assert json.loads(same_namespace)["pod"].startswith("web-")


def test_a_new_service_resolves_within_a_second(cluster_lab: str) -> None:
    from podnet.lab.state import load
    from podnet.model.manifest import parse_resource
    from podnet.store import resources
    from podnet.store.sqlite import SqliteStore

    record = load(cluster_lab)
    assert record is not None
    store = SqliteStore(record.store_path)
    fresh = parse_resource({"kind": "Service", "metadata": {"name": "fresh", "namespace": "apps"},
                            "spec": {"clusterIP": "10.96.0.99", "ports": [{"port": 80}]}})
    try:
        resources.put(store, fresh)  # type: ignore[arg-type]
        time.sleep(1.0)
        assert dig(cluster_lab, "+short", "fresh.apps.svc.cluster.local").strip() == "10.96.0.99"
    finally:
        resources.delete(store, fresh)  # type: ignore[arg-type]
        store.close()
    time.sleep(1.0)
    assert "NXDOMAIN" in dig(cluster_lab, "fresh.apps.svc.cluster.local")


def test_external_names_resolve_upstream_and_then_from_the_cache(cluster_lab: str) -> None:
    """www.example.org lives in the lab's internet namespace; the cluster DNS asks
    it, and answers a repeat question from its cache even once it is gone."""
    import subprocess

    assert dig(cluster_lab, "+short", "www.example.org").strip() == "203.0.113.10"
    upstream = subprocess.run(["pgrep", "-f", f"podnet dns --store /run/podnet/labs/{cluster_lab}/internet.db"],
                              capture_output=True, text=True).stdout.split()
    assert len(upstream) == 1
    subprocess.run(["kill", "-STOP", upstream[0]], check=True)  # the upstream stops answering
    try:
        assert dig(cluster_lab, "+short", "www.example.org").strip() == "203.0.113.10"
    finally:
        subprocess.run(["kill", "-CONT", upstream[0]], check=True)


def test_egress_is_masqueraded_behind_the_node_and_pod_traffic_is_not(cluster_lab: str) -> None:
    answer = json.loads(in_netns(f"pn-{cluster_lab}.{CLIENT}", "curl", "-s", "-m", "3", "http://www.example.org/get").stdout)
    assert answer["pod"] == "internet" and answer["origin"] == "172.18.0.2"  # client runs on control-plane
    assert in_netns(f"pn-{cluster_lab}.internet", "ping", "-c1", "-W1", "10.244.0.2", check=False).returncode != 0
