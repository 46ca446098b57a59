"""NetworkPolicy at scale on one node: 1 000 policies over 1 000 pods.

  program       the enforcer's sync (render and load, over netlink) against the
                iptables-style layout of the same policies (a chain per pod and per
                policy, peers in ipsets, a mark for "allowed", the pods dispatched
                one rule each: kube-router's layout), loaded as kube-router loads
                it (`ipset restore`, then `iptables-nft-restore`), and the same
                layout in nft's own terms (sets for ipsets) by `nft -f`; the
                anchors' texts are made beforehand, not timed
  first packet  TCP connect between two real pods across the node's bridge, with
                no policy, with podnet's table, and with the anchor's; the
                server is the last pod of the anchor's dispatch, as a pod often is
  throughput    iperf3 between the same pods (on 443, which the policies allow), with
                podnet's table and without
The node runs podnet's service table throughout (empty), as every podnet node
does: conntrack is on with or without policies, as it is in a cluster.

node (bridge cni0, 10.240.0.1/16) -- client pod p-998 (10.240.5.248), server pod p-999 (10.240.5.249)
Run as root: .venv/bin/python bench/policy_scale.py  (needs iperf3, ipset and iptables)
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time

from podnet.store.snapshot import Snapshot
from podnet.kernel import netns
from podnet.kernel.netlink import open_namespace
from podnet.kernel.nftables import Chain, Set, Table, Transaction
from podnet.kernel.nftables.hooks import FILTER, Hook
from podnet.kernel.nftables.nft import Nft
from podnet.kernel.nftables.objects import Element
from podnet.kernel.nftables.rules import (
    ACCEPT, CT_STATE, DROP, IP_DADDR, IP_SADDR, L4PROTO, META_MARK, RETURN, TH_DPORT, Masked, SetMark, SetRef, jump,
    match, rule,
)
from podnet.kernel.node import NamespaceKernel
from podnet.model.meta import ObjectMeta
from podnet.model.namespace import Namespace
from podnet.model.networkpolicy import NetworkPolicy, Peer, PolicyPort, PolicyRule
from podnet.model.pod import Container, ContainerPort, Pod
from podnet.model.selector import LabelSelector
from podnet.policy.enforcer import PolicyEnforcer
from podnet.policy.ruleset import TABLE
from podnet.policy.evaluator import PolicyView
from podnet.proxy.ruleset import build

NODE = "pn-bench.policy-node"
CLIENT, SERVER = "pn-bench.policy-client", "pn-bench.policy-server"
NAMESPACES = 100
PORT = 8080
ANCHOR = Table("ip", "iptables-style")
ALLOWED = 0x10000  # the anchor's mark: a policy chain allowed the packet


def pod_ip(j: int) -> str:
    return f"10.240.{2 + j // 250}.{j % 250}"


def cluster(pods: int) -> tuple[list[Pod], list[Namespace], list[NetworkPolicy]]:
    """Pod j in namespace ns-(j % 100) with app=a-(j // 100) and tier=t-(j % 3); policy
    i isolates pod i and lets in its namespace's tier t-(i % 3) and two team-labelled
    namespaces on the port; the server's policy also lets the client in."""
    namespaces = [Namespace(ObjectMeta(f"ns-{n}", namespace="", labels={"team": f"team-{n % 7}"})).labelled()
                  for n in range(NAMESPACES)]
    pod_list = []
    for j in range(pods):
        ports = (ContainerPort(PORT, "http", "TCP"),)
        pod_list.append(Pod(ObjectMeta(f"p-{j}", f"ns-{j % NAMESPACES}", labels={"app": f"a-{j // NAMESPACES}",
                                                                             "tier": f"t-{j % 3}"}),
                            (Container("serve", ports=ports),), node_name="node", pod_ips=(pod_ip(j),), ready=True))
    policies = []
    for i in range(pods):
        peers = [Peer(LabelSelector.of({"tier": f"t-{i % 3}"})),
                 Peer(LabelSelector.of({"tier": "t-0"}), LabelSelector.of({"team": f"team-{i % 7}"})),
                 Peer(None, LabelSelector.of({"team": f"team-{(i + 1) % 7}"}))]
        if i == pods - 1:  # the server lets the client in
            client = pod_list[pods - 2]
            peers.append(Peer(LabelSelector.of(client.metadata.labels),
                              LabelSelector.of({"kubernetes.io/metadata.name": client.metadata.namespace})))
        rule_ = PolicyRule(tuple(peers), (PolicyPort("TCP", "http"), PolicyPort("TCP", 443)))
        policies.append(NetworkPolicy(ObjectMeta(f"pol-{i}", f"ns-{i % NAMESPACES}"),
                                      LabelSelector.of(pod_list[i].metadata.labels), (rule_,)))
    return pod_list, namespaces, policies


def iptables_style(view: PolicyView, pods: list[Pod]) -> Transaction:
    """kube-router's layout in nft: FORWARD -> a rule per pod -> the pod's chain ->
    a jump per policy selecting it; a policy chain marks what it allows."""
    tx = Transaction(ANCHOR).replace().add(Chain("forward", Hook("filter", "forward", FILTER + 10)))
    tx.add(rule("forward", match(CT_STATE, "established,related"), ACCEPT))
    elements: list[Element] = []
    for i, policy in enumerate(view.policies):
        tx.add(Chain(f"pol-{i}"))
        for r, policy_rule in enumerate(policy.ingress):
            sources = sorted({p.pod_ip or "" for p in view.pods
                              if any(view.peer_matches(peer, policy, view.of_pod(p)) for peer in policy_rule.peers)})
            name = f"pol-{i}-{r}-src"
            tx.add(Set(name, "ipv4_addr"))
            elements += [Element(name, (ip,)) for ip in sources]
            for port in (PORT, 443):
                tx.add(rule(f"pol-{i}", match(IP_SADDR, SetRef(name)), match(L4PROTO, "tcp"),
                            match(TH_DPORT, str(port)), SetMark("|", ALLOWED), RETURN))
    index = {p.metadata.key: i for i, p in enumerate(view.policies)}
    for n, pod in enumerate(pods):
        chain = f"pod-fw-{n}"
        tx.add(Chain(chain), rule("forward", match(IP_DADDR, pod.pod_ip or ""), jump(chain)))
        for policy in view.selecting(pod, "Ingress"):
            tx.add(rule(chain, jump(f"pol-{index[policy.metadata.key]}")))
        tx.add(rule(chain, match(Masked(META_MARK, ALLOWED), ALLOWED), RETURN), rule(chain, DROP))
    return tx.add_elements(elements)


def kube_router_texts(view: PolicyView, pods: list[Pod]) -> tuple[str, str]:
    """The same layout as kube-router writes it: `ipset restore` input (a hash:ip
    set per policy rule) and `iptables-restore` input (the filter table)."""
    sets, rules = [], ["*filter", ":FORWARD ACCEPT [0:0]", ":PODNET-BENCH-FW - [0:0]"]
    body = ["-A FORWARD -j PODNET-BENCH-FW",
            "-A PODNET-BENCH-FW -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
    for i, policy in enumerate(view.policies):
        rules.append(f":NWPLCY-{i} - [0:0]")
        for r, policy_rule in enumerate(policy.ingress):
            name = f"SRC-{i}-{r}"
            sets.append(f"create {name} hash:ip family inet hashsize 1024 maxelem 65536")
            sets += [f"add {name} {p.pod_ip}" for p in view.pods
                     if any(view.peer_matches(peer, policy, view.of_pod(p)) for peer in policy_rule.peers)]
            for port in (PORT, 443):
                body.append(f"-A NWPLCY-{i} -p tcp -m set --match-set {name} src -m tcp --dport {port} "
                            f"-j MARK --set-xmark {ALLOWED:#x}/{ALLOWED:#x}")
            body.append(f"-A NWPLCY-{i} -m mark --mark {ALLOWED:#x}/{ALLOWED:#x} -j RETURN")
    index = {p.metadata.key: i for i, p in enumerate(view.policies)}
    for n, pod in enumerate(pods):
        rules.append(f":POD-FW-{n} - [0:0]")
        body.append(f"-A PODNET-BENCH-FW -d {pod.pod_ip}/32 -j POD-FW-{n}")
        body += [f"-A POD-FW-{n} -j NWPLCY-{index[p.metadata.key]}" for p in view.selecting(pod, "Ingress")]
        body += [f"-A POD-FW-{n} -m mark --mark {ALLOWED:#x}/{ALLOWED:#x} -j RETURN", f"-A POD-FW-{n} -j DROP"]
    return "\n".join(sets) + "\n", "\n".join([*rules, *body, "COMMIT"]) + "\n"


def kube_router_load(texts: tuple[str, str]) -> None:
    netns.run(NODE, ["ipset", "restore"], input=texts[0], timeout=300)
    netns.run(NODE, ["iptables-nft-restore", "--noflush"], input=texts[1], timeout=300)


def kube_router_clear() -> None:
    netns.run(NODE, ["iptables-nft-restore"], input="*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n")
    netns.run(NODE, ["ipset", "destroy"])


def setup() -> subprocess.Popen:  # type: ignore[type-arg]
    for name in (NODE, CLIENT, SERVER):
        netns.create(name)
    with open_namespace(NODE) as node:
        node.ensure_bridge("cni0")
        node.ensure_address("cni0", "10.240.0.1/16")
        node.set_up("cni0")
        for pod, ip in ((CLIENT, pod_ip(998)), (SERVER, pod_ip(999))):
            host = "veth-c" if pod == CLIENT else "veth-s"
            node.ensure_veth(host, "eth0", pod)
            node.set_master(host, "cni0")
            node.set_up(host)
            with open_namespace(pod) as inside:
                inside.ensure_address("eth0", f"{ip}/16")
                inside.set_up("eth0")
    server = subprocess.Popen(netns.exec_argv(SERVER, [sys.executable, "-c", (
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0', {PORT}))\ns.listen(4096)\nwhile True:\n    s.accept()[0].close()")]))
    iperf = subprocess.Popen(netns.exec_argv(SERVER, ["iperf3", "-s", "-p", "443"]), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return server, iperf  # type: ignore[return-value]


def first_packet(rounds: int = 400) -> float:
    """Median TCP connect time (us), client pod to server pod across the bridge."""
    target = (pod_ip(999), PORT)

    def connects() -> list[float]:
        samples = []
        for _ in range(rounds):
            with socket.socket() as sock:
                started = time.perf_counter()
                sock.connect(target)
                samples.append((time.perf_counter() - started) * 1e6)
        return samples

    return statistics.median(netns.run_in(CLIENT, connects))


def throughput() -> float:
    out = netns.run(CLIENT, ["iperf3", "-c", pod_ip(999), "-p", "443", "-t", "2", "-J"], timeout=60).stdout
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000, help="and as many policies")
    options = parser.parse_args()
    for tool, package in (("iperf3", "iperf3"), ("ipset", "ipset"), ("iptables-nft-restore", "iptables")):
        if not shutil.which(tool):
            raise SystemExit(f"install {tool} first (apt-get install {package})")
    pods, namespaces, policies = cluster(options.pods)
    processes = setup()
    try:
        kernel = NamespaceKernel(NODE)
        kernel.nft.run(build([], "10.240.0.0/16").transaction())  # the service table, so conntrack, as on any node
        script_nft = Nft.in_namespace(NODE)
        snapshot = Snapshot(1, [], pods, [], [], namespaces, policies)
        view = PolicyView(pods, namespaces, policies)
        anchor = iptables_style(view, pods)
        drop_anchor = Transaction(ANCHOR).destroy(ANCHOR)
        none_latency = first_packet()
        theirs_program = statistics.median(timed(script_nft.run, anchor) for _ in range(3))
        theirs_latency = first_packet()
        script_nft.run(drop_anchor)
        texts = kube_router_texts(view, pods)
        router_program = []
        for _ in range(3):
            router_program.append(timed(kube_router_load, texts))
            router_latency = first_packet()
            kube_router_clear()
        ours_program = statistics.median(timed(PolicyEnforcer(kernel, "node").sync, snapshot) for _ in range(3))
        ours_latency = first_packet()
        assert TABLE.name in netns.run(NODE, ["nft", "list", "tables"]).stdout
        latencies: dict[bool, list[float]] = {False: [none_latency], True: [ours_latency]}
        throughputs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(5):  # one run's figure moves by more than the difference: interleave, take medians
            for policed in (False, True):
                if policed:
                    PolicyEnforcer(kernel, "node").sync(snapshot)
                else:
                    kernel.nft.run(Transaction(TABLE).destroy(TABLE))
                latencies[policed].append(first_packet())
                throughputs[policed].append(throughput())
        none_latency, ours_latency = (statistics.median(latencies[p]) for p in (False, True))
        none_throughput, ours_throughput = (statistics.median(throughputs[p]) for p in (False, True))
        n = options.pods
        router = statistics.median(router_program)
        print(f"{n} policies over {n} pods on one node")
        print(f"{'':<50}{'anchor':>15}{'podnet':>10}{'ratio':>8}")
        print(f"{'program (ms), kube-router: ipset + iptables-nft':<50}{router:>15.1f}{ours_program:>10.1f}"
              f"{ours_program / router:>8.2f}")
        print(f"{'program (ms), the same layout in nft -f':<50}{theirs_program:>15.1f}{ours_program:>10.1f}"
              f"{ours_program / theirs_program:>8.2f}")
        print(f"{'first packet (TCP connect, us), kube-router':<50}{router_latency:>15.1f}{ours_latency:>10.1f}"
              f"{ours_latency / router_latency:>8.2f}")
        print(f"{'first packet (TCP connect, us), nft layout':<50}{theirs_latency:>15.1f}{ours_latency:>10.1f}"
              f"{ours_latency / theirs_latency:>8.2f}")
        print(f"first packet without policies: {none_latency:.1f} us; with {n}: podnet "
              f"{ours_latency / none_latency:.2f}x, iptables-style {theirs_latency / none_latency:.2f}x")
        print(f"throughput (iperf3, Gbit/s, medians of 5 interleaved): without policies {none_throughput:.2f}, with podnet's {n} "
              f"{ours_throughput:.2f}: {ours_throughput / none_throughput:.2f}x")
    finally:
        for process in processes:  # type: ignore[attr-defined]
            process.kill()
            process.wait()
        netns.kill_processes_in([NODE, CLIENT, SERVER])
        for name in (NODE, CLIENT, SERVER):
            netns.delete(name)


if __name__ == "__main__":
    main()
