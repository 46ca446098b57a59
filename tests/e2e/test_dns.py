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


def pod_ips(lab: str, namespace: str, prefix: str) -> list[str]:
    listing = json.loads(podnet("get", "pods", "-n", namespace, "--lab", lab, "-o", "json").stdout)
    return sorted(p["status"]["podIP"] for p in listing["items"] if p["metadata"]["name"].startswith(prefix))


def lines(text: str) -> str:
    return "\n".join(sorted(text.split("\n")))


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


CASES = {
    "service A": (["+short", "web-service.apps.svc.cluster.local"], lambda lab: service_ip(lab, "web-service", "apps")),
    "case-insensitive": (["+short", "WEB-SERVICE.Apps.Svc.Cluster.Local"], lambda lab: service_ip(lab, "web-service", "apps")),
    "search path from resolv.conf": (["+short", "+search", "web-service.apps"], lambda lab: service_ip(lab, "web-service", "apps")),
    "dns-version TXT": (["+short", "TXT", "dns-version.cluster.local"], lambda lab: '"1.1.0"'),
    "SRV of a named port": (["+short", "SRV", "_http._tcp.web-service.apps.svc.cluster.local"],
                            lambda lab: "0 100 80 web-service.apps.svc.cluster.local."),
    "PTR of the ClusterIP": (["+short", "-x", "10.96.0.10"], lambda lab: "kube-dns.kube-system.svc.cluster.local."),
    "over TCP": (["+short", "+tcp", "kube-dns.kube-system.svc.cluster.local"], lambda lab: "10.96.0.10"),
    "headless: a record per ready endpoint": (["+short", "web-headless.apps.svc.cluster.local"],
                                              lambda lab: lines("\n".join(pod_ips(lab, "apps", "web-")))),
    "headless: SRV per endpoint (N x M)": (["+short", "SRV", "_http._tcp.web-headless.apps.svc.cluster.local"],
                                           lambda lab: lines("\n".join(
                                               f"0 16 80 {dashed(ip)}.web-headless.apps.svc.cluster.local."
                                               for ip in pod_ips(lab, "apps", "web-")))),
    "pod hostname.subdomain": (["+short", "db-0.db.apps.svc.cluster.local"], lambda lab: pod_ips(lab, "apps", "db-0")[0]),
    "PTR of a headless endpoint": (["+short", "-x", "POD:apps:db-0"], lambda lab: "db-0.db.apps.svc.cluster.local."),
    "pod A record": (["+short", "POD-A:apps:db-0"], lambda lab: pod_ips(lab, "apps", "db-0")[0]),
    "ExternalName: CNAME and the target resolved": (["+short", "example.apps.svc.cluster.local"],
                                                    lambda lab: "www.example.org.\n203.0.113.10"),
}


def resolve_placeholders(lab: str, args: list[str]) -> list[str]:
    """POD:<ns>:<name> is that pod's IP; POD-A:<ns>:<name> its a-b-c-d.<ns>.pod name."""
    out = []
    for arg in args:
        kind, _, rest = arg.partition(":")
        if kind in ("POD", "POD-A"):
            namespace, name = rest.split(":")
            ip = pod_ips(lab, namespace, name)[0]
            arg = ip if kind == "POD" else f"{dashed(ip)}.{namespace}.pod.cluster.local"
        out.append(arg)
    return out


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_dns_case(cluster_lab: str, case: str) -> None:
    args, expected = CASES[case]
    answer = dig(cluster_lab, *resolve_placeholders(cluster_lab, args)).strip()
    if "headless" in case and "PTR" not in case:
        answer = lines(answer)
    assert answer == expected(cluster_lab)


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
    from podnet.store.location import open_store

    record = load(cluster_lab)
    assert record is not None
    store = open_store(record.store)
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
    upstream = subprocess.run(["pgrep", "-f", f"^\\S+ -m podnet dns --store /run/podnet/labs/{cluster_lab}/internet.db"],
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


def test_health_ready_and_metrics_as_kubeadm_exposes_them(cluster_lab: str) -> None:
    server = pod_ips(cluster_lab, "kube-system", "coredns")[0]
    client = f"pn-{cluster_lab}.{CLIENT}"
    assert in_netns(client, "curl", "-s", "-m", "3", f"http://{server}:8080/health").stdout == "OK"
    assert in_netns(client, "curl", "-s", "-m", "3", f"http://{server}:8181/ready").stdout == "OK"
    dig(cluster_lab, "web-service.apps.svc.cluster.local")
    metrics = in_netns(client, "curl", "-s", "-m", "3", f"http://{server}:9153/metrics").stdout
    requests = [line for line in metrics.splitlines() if line.startswith(
        'coredns_dns_requests_total{family="1",proto="udp",server="dns://:53",type="A",view="",zone="."}')]
    assert requests and float(requests[0].split()[-1]) >= 1
    assert 'coredns_dns_responses_total{plugin="kubernetes",rcode="NOERROR",server="dns://:53",view="",zone="."}' \
        in metrics and 'coredns_cache_hits_total{server="dns://:53",type="success",view="",zones="."}' in metrics


def test_garbage_gets_formerr_or_silence_and_the_server_keeps_answering(cluster_lab: str) -> None:
    """Bytes no DNS client would send, over UDP and TCP, then a real question."""
    script = (
        "import socket, os, struct\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.3)\n"
        "replies = []\n"
        "for payload in [b'', b'\\x00', os.urandom(11), b'\\x12\\x34' + b'\\xff' * 10, os.urandom(12) + b'\\x3f' * 300,\n"
        "                b'\\xab\\xcd\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example', os.urandom(4000)]:\n"
        "    s.sendto(payload, ('10.96.0.10', 53))\n"
        "    try:\n"
        "        replies.append(s.recv(4096))\n"
        "    except socket.timeout:\n"
        "        replies.append(None)\n"
        "t = socket.create_connection(('10.96.0.10', 53), timeout=2)\n"
        "t.sendall(struct.pack('!H', 300) + os.urandom(20)); t.close()\n"
        "print([None if r is None else (r[3] & 15) for r in replies])\n"
    )
    out = in_netns(f"pn-{cluster_lab}.{CLIENT}", "python3", "-c", script).stdout.strip()
    assert set(eval(out)) <= {None, 1}  # FORMERR (1) or no reply at all
    assert dig(cluster_lab, "+short", "kube-dns.kube-system.svc.cluster.local").strip() == "10.96.0.10"
