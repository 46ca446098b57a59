"""NetworkPolicy conformance as Kubernetes tests it: the upstream netpol model
(namespaces x, y, z; pods a, b, c in each, over two nodes, serving TCP and UDP
on 80 and 81), and for every case all 9 x 9 pairs probed with real packets and
compared with the evaluator's truth table. A mismatch prints both tables.

The lab is dual-stack and every case is probed in both families: selector cases
must give the same table over IPv4 and IPv6, and ipBlock cases differ exactly
where the block's family says (the evaluator's table for each family is the
expectation)."""

from __future__ import annotations

import errno
import http.client
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.lab.client import cluster_store
from podnet.kernel import netns
from podnet.model.clusternetworkpolicy import ClusterNetworkPolicy
from podnet.model.families import IPV4, IPV6, first_of
from podnet.model.namespace import Namespace
from podnet.model.networkpolicy import NetworkPolicy
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.policy.evaluator import PolicyView
from podnet.store import resources
from tests.helpers import in_netns, podnet, within
from tests.policy_model import NAMESPACES, PODS, PORTS, port_name, truth_table
from tests.policy_model import addresses as model_addresses

LAB = "test_netpol"
NODES = ("n1", "n2")
FAMILIES = (IPV4, IPV6)
PROBE_TIMEOUT = 0.6  # seconds: answers in a lab take well under a millisecond; a dropped probe waits this long
CONVERGE = 15.0  # seconds for every node to program a change


def _model() -> str:
    documents = []
    for namespace in NAMESPACES:
        documents.append(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}, labels: {{ns: {namespace}}}}}\n")
    ports = ", ".join(f"{{containerPort: {port}, protocol: {protocol}, name: {port_name(port, protocol)}}}"
                      for port, protocol in PORTS)
    service_ports = ", ".join(f"{{name: {port_name(port, protocol)}, port: {port}, protocol: {protocol}}}"
                              for port, protocol in PORTS)
    for i, (namespace, pod) in enumerate((n, p) for n in NAMESPACES for p in PODS):
        documents.append(f"apiVersion: v1\nkind: Service\nmetadata: {{name: s-{pod}, namespace: {namespace}}}\n"
                         f"spec: {{ipFamilyPolicy: PreferDualStack, selector: {{pod: {pod}}}, "
                         f"ports: [{service_ports}]}}\n")
        documents.append(f"""apiVersion: v1
apiVersion: v1
kind: Pod
metadata: {{name: {pod}, namespace: {namespace}, labels: {{pod: {pod}}}}}
spec:
  nodeName: {NODES[i % 2]}
  containers:
  - name: serve
    command: [podnet, echo, --port, "80", --port, "81"]
    ports: [{ports}]
""")
    return "---\n".join(documents)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("netpol")
    nodes = ", ".join(f"{{name: {n}}}" for n in NODES)
    (directory / "lab.yaml").write_text(f"apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nmetadata: {{name: {LAB}}}\n"
                                        f"networking: {{ipFamilies: [IPv4, IPv6]}}\nnodes: [{nodes}]\n")
    (directory / "model.yaml").write_text(_model())
    podnet("lab", "up", str(directory / "lab.yaml"))
    try:
        podnet("apply", "--lab", LAB, "-f", str(directory / "model.yaml"))
        assert within(60, lambda: len(_view().pods) == 9 and all(p.ready for p in _view().pods), interval=0.5), \
            "the model's pods did not all become Ready"
        yield directory
    finally:
        podnet("lab", "down", LAB)


def _view() -> PolicyView:
    """The model's pods (not the lab's DNS server) and everything else the evaluator reads."""
    with cluster_store(LAB) as store:
        pods = [p for p in resources.list_kind(store, Pod)[0] if p.metadata.namespace in NAMESPACES]
        return PolicyView(pods, resources.list_kind(store, Namespace)[0],
                          resources.list_kind(store, NetworkPolicy)[0], resources.list_kind(store, Node)[0],
                          resources.list_kind(store, ClusterNetworkPolicy)[0])


def _probe_row(targets: list[tuple[str, str]], port: int, protocol: str) -> dict[str, bool]:
    """From inside one pod: which targets (key, IP) answer, all probed at once."""
    kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
    pending: dict[int, tuple[str, socket.socket]] = {}
    answered = {key: False for key, _ in targets}
    poller = select.poll()
    for key, address in targets:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, kind)
        sock.setblocking(False)
        if protocol == "TCP":
            if sock.connect_ex((address, port)) not in (0, errno.EINPROGRESS):
                sock.close()
                continue
            poller.register(sock, select.POLLOUT)
        else:
            sock.connect((address, port))
            sock.send(b"probe")
            poller.register(sock, select.POLLIN)
        pending[sock.fileno()] = (key, sock)
    deadline = time.monotonic() + PROBE_TIMEOUT
    while pending and (left := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(left * 1000):
            key, sock = pending.pop(fd)
            poller.unregister(fd)
            if protocol == "TCP":
                answered[key] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            else:
                try:
                    answered[key] = bool(sock.recv(4096))
                except OSError:  # ICMP unreachable: nobody serves it
                    answered[key] = False
            sock.close()
    for _, sock in pending.values():
        sock.close()
    return answered


def _service_ips(family: str) -> dict[str, str]:
    """Each model pod's Service's ClusterIP of the family, by the pod's key."""
    with cluster_store(LAB) as store:
        return {f"{s.metadata.namespace}/{s.metadata.name.removeprefix('s-')}": first_of(s.cluster_ips, family) or ""
                for s in resources.list_kind(store, Service)[0] if s.metadata.name.startswith("s-")}


def probe(view: PolicyView, port: int, protocol: str, through_services: bool = False,
          family: str = IPV4) -> dict[tuple[str, str], bool]:
    """Every pair, with real packets: each source probes every pod from its own
    namespace, at the pod's IP of the family or at its Service's ClusterIP of it."""
    addresses = _service_ips(family) if through_services else model_addresses(view.pods, family)
    targets = [(p.metadata.key, addresses[p.metadata.key]) for p in view.pods]
    table: dict[tuple[str, str], bool] = {}

    def row(pod: Pod) -> None:
        answered = netns.run_in(f"pn-{LAB}.{pod.metadata.namespace}.{pod.metadata.name}", _probe_row, targets, port,
                                protocol)
        table.update(((pod.metadata.key, key), ok) for key, ok in answered.items())

    threads = [threading.Thread(target=row, args=(pod,)) for pod in view.pods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return table


def _render(table: dict[tuple[str, str], bool]) -> str:
    keys = sorted({source for source, _ in table})
    lines = ["from\\to " + " ".join(f"{k:>4}" for k in keys)]
    for source in keys:
        lines.append(f"{source:>7} " + " ".join(f"{'.' if table[(source, d)] else 'X':>4}" for d in keys))
    return "\n".join(lines)


def converges(port: int, protocol: str, through_services: bool = False) -> None:
    """Until the kernel's reachability equals the evaluator's in each family, or CONVERGE passes."""
    for family in FAMILIES:
        expected: dict[tuple[str, str], bool] = {}
        got: dict[tuple[str, str], bool] = {}

        def same() -> bool:
            nonlocal expected, got
            view = _view()
            expected = truth_table(view, port, protocol, family)
            got = probe(view, port, protocol, through_services, family)
            return got == expected

        if not within(CONVERGE, same, interval=0.2):
            pytest.fail(f"{port}/{protocol} over {family}{' through services' if through_services else ''}: the kernel "
                        f"differs from the evaluator\nexpected:\n{_render(expected)}\nprobed:\n{_render(got)}")


CASES: dict[str, tuple[str, list[tuple[int, str]]]] = {
    "no-policy": ("", [(80, "TCP"), (81, "UDP")]),
    "deny-all-ingress": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec: {podSelector: {}}
""", [(80, "TCP"), (80, "UDP")]),
    "deny-all-both-ways": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: y}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
""", [(80, "TCP")]),
    "allow-from-b-only": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
""", [(80, "TCP")]),
    "namespace-and-pod-in-one-peer": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: c}}}]}]
""", [(80, "TCP")]),
    "namespace-or-pod-in-two-peers": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: or, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}, {podSelector: {matchLabels: {pod: c}}}]}]
""", [(80, "TCP")]),
    "namespace-on-81-only": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: on-81, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}], ports: [{port: 81}]}]
""", [(80, "TCP"), (81, "TCP"), (81, "UDP")]),
    "named-ingress-port": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: named, namespace: z}
spec:
  podSelector: {}
  ingress: [{ports: [{port: serve-81-udp, protocol: UDP}]}]
""", [(81, "UDP"), (80, "UDP"), (81, "TCP")]),
    "egress-to-named-port": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: out, namespace: y}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{ports: [{port: serve-80-tcp}]}]
""", [(80, "TCP"), (81, "TCP")]),
    "end-port": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: range, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 81, endPort: 90, protocol: UDP}]}]
""", [(80, "UDP"), (81, "UDP")]),
    "client-egress-wins-over-server-ingress": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: no-out, namespace: z}
spec: {podSelector: {matchLabels: {pod: b}}, policyTypes: [Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all-in, namespace: x}
spec: {podSelector: {}, ingress: [{}]}
""", [(80, "TCP")]),
    "cluster-tiers-with-pass": ("""
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: pass-y}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  ingress:
  - {action: Pass, from: [{namespaces: {matchLabels: {ns: y}}}]}
  - {action: Accept, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {pod: c}}}}],
     match: [{tcp: {port: {number: 80}}}]}
  - {action: Deny, from: [{namespaces: {matchLabels: {ns: x}}}], match: [{tcp: {port: {number: 81}}}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-b, namespace: x}
spec: {podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {matchLabels: {ns: z}}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {ns: y}}}]}]
""", [(80, "TCP"), (81, "TCP")]),
    "deny-all-egress": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: no-egress, namespace: x}
spec: {podSelector: {}, policyTypes: [Egress]}
""", [(80, "TCP")]),
    "deny-then-allow-all-is-the-union": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: y}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: y}
spec: {podSelector: {matchLabels: {pod: b}}, ingress: [{}]}
""", [(80, "TCP")]),
    "namespaces-by-expression": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: not-x, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]}}]}]
""", [(80, "TCP")]),
    "targets-by-expression": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-and-b, namespace: z}
spec: {podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}}
""", [(81, "TCP")]),
    "egress-to-one-namespace": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: c}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}]}]
""", [(80, "TCP"), (80, "UDP")]),
    "egress-to-pod-b-anywhere": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-b, namespace: y}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]}]
""", [(81, "UDP")]),
    "protocol-only-port": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: udp-only, namespace: x}
spec: {podSelector: {}, ingress: [{ports: [{protocol: UDP}]}]}
""", [(80, "TCP"), (80, "UDP")]),
    "egress-ip-block": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-block, namespace: z}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.244.1.0/24}}]}]
""", [(80, "TCP")]),
    "two-policies-one-pod": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-b, namespace: x}
spec: {podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-y, namespace: x}
spec: {podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]}
""", [(80, "TCP")]),
    "ingress-and-egress-in-one-policy": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: both, namespace: y}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}]}]
  egress: [{to: [{podSelector: {matchLabels: {pod: c}}}]}]
""", [(80, "TCP")]),
    "every-namespace-allowed": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all-namespaces, namespace: z}
spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}
""", [(80, "TCP")]),
    "pod-a-isolated-everywhere": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-a, namespace: x}
spec: {podSelector: {matchLabels: {pod: a}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-a, namespace: y}
spec: {podSelector: {matchLabels: {pod: a}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-a, namespace: z}
spec: {podSelector: {matchLabels: {pod: a}}}
""", [(80, "UDP")]),
    "namespace-on-a-named-port": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: z-on-http, namespace: y}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}], ports: [{port: serve-80-tcp}]}]
""", [(80, "TCP"), (81, "TCP")]),
    "egress-only-a-named-udp-port": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns-like, namespace: z}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{ports: [{port: serve-81-udp, protocol: UDP}]}]
""", [(81, "UDP"), (80, "UDP")]),
    "end-port-over-both-tcp-ports": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: both-ports, namespace: z}
spec:
  podSelector: {matchLabels: {pod: c}}
  ingress: [{from: [{podSelector: {}}], ports: [{port: 80, endPort: 81}]}]
""", [(81, "TCP")]),
    "ingress-ipv6-block-with-except": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-block6, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: "fd00:10:244::/56", except: ["fd00:10:244:1::/64"]}}]}]
""", [(80, "TCP")]),
    "ingress-ip-block-with-except": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-block, namespace: y}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.1.0/24]}}]}]
""", [(80, "TCP")]),
    "admin-deny-beats-a-network-policy-allow": ("""
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: no-z-to-x}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {ns: z}}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: x}
spec: {podSelector: {}, ingress: [{}]}
""", [(80, "TCP")]),
    "baseline-deny-only-where-no-network-policy": ("""
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline-isolate}
spec:
  tier: Baseline
  priority: 1
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-x, namespace: y}
spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}}]}]}
""", [(80, "TCP")]),
    "udp-only-from-one-namespace": ("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: udp-from-z, namespace: x}
spec:
  podSelector: {matchLabels: {pod: c}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}], ports: [{protocol: UDP, port: 81}]}]
""", [(81, "UDP"), (81, "TCP"), (80, "UDP")]),
}


def _apply(lab: Path, name: str, text: str) -> Path:
    path = lab / f"{name}.yaml"
    path.write_text("\n---\n".join(doc.strip() if "apiVersion" in doc else f"apiVersion: networking.k8s.io/v1\n{doc.strip()}"
                                   for doc in text.split("---") if doc.strip()))
    podnet("apply", "--lab", LAB, "-f", str(path))
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_reachability_equals_the_evaluator(lab: Path, case: str) -> None:
    text, probes = CASES[case]
    path = _apply(lab, case, text) if text else None
    try:
        for port, protocol in probes:
            converges(port, protocol)
    finally:
        if path is not None:
            podnet("delete", "--lab", LAB, "-f", str(path))


def test_deleting_the_policy_restores_reachability(lab: Path) -> None:
    path = _apply(lab, "deny", CASES["deny-all-ingress"][0])
    converges(80, "TCP")
    assert not all(truth_table(_view(), 80).values())
    podnet("delete", "--lab", LAB, "-f", str(path))
    converges(80, "TCP")
    assert all(truth_table(_view(), 80).values())


def test_policies_hold_through_services(lab: Path) -> None:
    """A probe to a ClusterIP is judged at the endpoint pod, after DNAT (a pod
    reaching itself through its Service included)."""
    path = _apply(lab, "through-services", CASES["namespace-on-81-only"][0])
    try:
        converges(80, "TCP", through_services=True)
        converges(81, "TCP", through_services=True)
    finally:
        podnet("delete", "--lab", LAB, "-f", str(path))


def test_label_changes_move_pods_and_namespaces_in_and_out(lab: Path) -> None:
    path = _apply(lab, "labels", """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-team, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: blue}}}, {podSelector: {matchLabels: {role: friend}}}]}]
""")
    try:
        converges(80, "TCP")
        podnet("label", "--lab", LAB, "namespace", "z", "team=blue")
        podnet("label", "--lab", LAB, "-n", "x", "pod", "c", "role=friend")
        converges(80, "TCP")
        podnet("label", "--lab", LAB, "namespace", "z", "team-")
        podnet("label", "--lab", LAB, "-n", "x", "pod", "a", "pod=other", "--overwrite")  # a leaves its own policy
        converges(80, "TCP")
    finally:
        podnet("label", "--lab", LAB, "-n", "x", "pod", "a", "pod=a", "--overwrite")
        podnet("label", "--lab", LAB, "-n", "x", "pod", "c", "role-")
        podnet("delete", "--lab", LAB, "-f", str(path))


def test_an_ip_block_and_its_update(lab: Path) -> None:
    view = _view()
    y_a = next(p for p in view.pods if p.metadata.key == "y/a")
    text = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: block, namespace: x}}
spec:
  podSelector: {{}}
  ingress: [{{from: [{{ipBlock: {{cidr: 10.244.0.0/16, except: [{hole}]}}}}]}}]
"""
    path = _apply(lab, "block", text.format(hole=f"{y_a.pod_ip}/32"))
    try:
        converges(80, "TCP")
        _apply(lab, "block", text.format(hole="10.244.1.0/24"))  # the update: another hole
        converges(80, "TCP")
    finally:
        podnet("delete", "--lab", LAB, "-f", str(path))


def test_policy_check_answers_from_the_store(lab: Path) -> None:
    path = _apply(lab, "check", CASES["allow-from-b-only"][0])
    try:
        allowed = podnet("policy", "check", "--lab", LAB, "x/b", "x/a:80")
        assert allowed.stdout.startswith("allowed: x/b -> x/a:80/TCP") and "x/from-b ingress[0]" in allowed.stdout
        denied = podnet("policy", "check", "--lab", LAB, "y/b", "x/a:80", check=False)
        assert denied.returncode == 1 and denied.stdout.startswith("denied: y/b -> x/a:80/TCP")
        assert "isolated by x/from-b" in denied.stdout
        through = podnet("policy", "check", "--lab", LAB, "-n", "y", "b", "x/svc/s-a:80", check=False)
        assert through.returncode == 1 and "denied: y/b -> x/a:80/TCP" in through.stdout
        wrong = podnet("policy", "check", "--lab", LAB, "x/nope", "x/a:80", check=False)
        assert wrong.returncode == 1 and wrong.stderr.strip() == "error: no pod x/nope with an IP (see `podnet get pods -A`)"
    finally:
        podnet("delete", "--lab", LAB, "-f", str(path))


# Generated cases, as cyclonus draws them: random policies over the same model.
_SELECTORS = st.sampled_from(["{}", "{matchLabels: {pod: a}}", "{matchLabels: {pod: b}}",
                              "{matchExpressions: [{key: pod, operator: In, values: [a, c]}]}",
                              "{matchExpressions: [{key: pod, operator: NotIn, values: [a]}]}"])
_NAMESPACE_SELECTORS = st.sampled_from(["{}", "{matchLabels: {ns: x}}", "{matchLabels: {ns: y}}",
                                        "{matchExpressions: [{key: ns, operator: In, values: [y, z]}]}"])
_PEER = st.one_of(
    _SELECTORS.map(lambda s: f"{{podSelector: {s}}}"),
    _NAMESPACE_SELECTORS.map(lambda s: f"{{namespaceSelector: {s}}}"),
    st.tuples(_NAMESPACE_SELECTORS, _SELECTORS).map(lambda t: f"{{namespaceSelector: {t[0]}, podSelector: {t[1]}}}"),
    st.sampled_from(["{ipBlock: {cidr: 10.244.0.0/16}}", "{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.1.0/24]}}",
                     "{ipBlock: {cidr: 10.244.1.0/24}}"]),
)
_PORT = st.sampled_from(["{port: 80}", "{port: 81, protocol: UDP}", "{protocol: UDP}", "{port: serve-80-tcp}",
                         "{port: serve-81-udp, protocol: UDP}", "{port: 79, endPort: 80}", "{protocol: TCP}"])


def _rule(peers_key: str) -> st.SearchStrategy[str]:
    peers = st.one_of(st.just(""), st.lists(_PEER, min_size=1, max_size=2).map(
        lambda ps: f"{peers_key}: [{', '.join(ps)}]"))
    ports = st.one_of(st.just(""), st.lists(_PORT, min_size=1, max_size=2).map(lambda ps: f"ports: [{', '.join(ps)}]"))
    return st.tuples(peers, ports).map(lambda t: "{" + ", ".join(part for part in t if part) + "}")


@st.composite
def _policy(draw: st.DrawFn, index: int) -> str:
    namespace = draw(st.sampled_from(NAMESPACES))
    spec = [f"podSelector: {draw(_SELECTORS)}"]
    ingress = draw(st.one_of(st.none(), st.lists(_rule("from"), max_size=2)))
    egress = draw(st.one_of(st.none(), st.lists(_rule("to"), max_size=2)))
    if ingress is not None:
        spec.append(f"ingress: [{', '.join(ingress)}]")
    if egress is not None:
        spec.append(f"egress: [{', '.join(egress)}]")
    types = draw(st.sampled_from([None, "[Ingress]", "[Egress]", "[Ingress, Egress]"]))
    if types:
        spec.append(f"policyTypes: {types}")
    return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            f"metadata: {{name: drawn-{index}, namespace: {namespace}}}\nspec: {{{', '.join(spec)}}}\n")


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("PODNET_NETPOL_EXAMPLES", "25")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(policies=st.lists(st.integers(0, 1), min_size=1, max_size=2).flatmap(
           lambda ids: st.tuples(*(_policy(i) for i in range(len(ids))))),
       probe_with=st.sampled_from(PORTS))
def test_drawn_policies_equal_the_evaluator(lab: Path, policies: tuple[str, ...], probe_with: tuple[int, str]) -> None:
    path = _apply(lab, "drawn", "\n---\n".join(policies))
    try:
        converges(*probe_with)
    finally:
        podnet("delete", "--lab", LAB, "-f", str(path))


def test_drops_and_audits_are_seen_with_their_policies(lab: Path) -> None:
    path = _apply(lab, "watched", CASES["deny-all-ingress"][0] + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: watch, namespace: z, annotations: {podnet.dev/enforcement: audit}}
spec: {podSelector: {}}
""")
    try:
        converges(80, "TCP")  # programmed: x is isolated, z only watched (still reachable)
        watcher = subprocess.Popen([sys.executable, "-m", "podnet", "policy", "drops", "--lab", LAB, "--seconds", "4"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "COLUMNS": "200"})
        time.sleep(1.5)  # bound to every node's group
        probe(_view(), 80, "TCP")
        out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 0, err
        rows = [line.split() for line in out.splitlines()[1:]]  # a burst is sampled: some pairs, not all
        assert any(row[3].startswith("x/") and row[4:8] == ["TCP", "dropped", "x/deny-all", "(ingress)"] for row in rows)
        assert any(row[3].startswith("z/") and row[4:8] == ["TCP", "audit", "z/watch", "(ingress)"] for row in rows)
        assert not any(row[3].startswith("y/") for row in rows), out  # y is neither isolated nor watched
    finally:
        podnet("delete", "--lab", LAB, "-f", str(path))


def test_connections_established_before_a_policy_keep_going(lab: Path) -> None:
    """Decided for podnet, as Calico and Cilium do: conntrack passes an established
    connection before any rule, so a policy judges only new connections."""
    x_a = next(p for p in _view().pods if p.metadata.key == "x/a")
    client = f"pn-{LAB}.y.b"

    def connect() -> http.client.HTTPConnection:  # the socket is y/b's, whichever thread uses it next
        connection = http.client.HTTPConnection(x_a.pod_ip or "", 80, timeout=3)
        connection.connect()
        return connection

    connection = netns.run_in(client, connect)
    try:
        connection.request("GET", "/")
        assert connection.getresponse().read()
        before = connection.sock.getsockname()
        path = _apply(lab, "later", CASES["deny-all-ingress"][0])  # from here: the API is on this machine's loopback
        try:
            refused = within(CONVERGE, lambda: not netns.run_in(
                client, _probe_row, [("x/a", x_a.pod_ip or "")], 80, "TCP")["x/a"], interval=0.2)
            connection.request("GET", "/")  # the same connection (the same local port), past the new policy
            kept = connection.getresponse().status == 200 and connection.sock.getsockname() == before
        finally:
            podnet("delete", "--lab", LAB, "-f", str(path))
    finally:
        connection.close()
    assert refused and kept


def test_a_new_pod_is_isolated_by_the_time_the_store_shows_its_address(lab: Path) -> None:
    """The agent puts its address in the isolated set between CNI ADD and the pod's
    start (tests/unit/test_policy_enforcer.py shows the order; here, the result)."""
    policy_path = _apply(lab, "isolating", CASES["deny-all-ingress"][0])
    pod_path = lab / "late.yaml"
    pod_path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: late, namespace: x, labels: {pod: late}}\n"
                        "spec: {nodeName: n1}\n")
    try:
        podnet("apply", "--lab", LAB, "-f", str(pod_path))

        def stored_address() -> str | None:
            with cluster_store(LAB) as store:
                pod = resources.get(store, Pod, "x", "late")
            return pod.pod_ip if pod is not None else None

        assert within(30, lambda: stored_address() is not None, interval=0.01)
        address = stored_address()
        listed = in_netns(f"pn-{LAB}.n1", "nft", "list", "map", "inet", "podnet-policy", "ingress_pods").stdout
        assert f"{address} : goto" in listed, listed
    finally:
        podnet("delete", "--lab", LAB, "-f", str(pod_path))
        podnet("delete", "--lab", LAB, "-f", str(policy_path))
