"""The flow recorder in a real namespace: when its receiving thread dies, its
endpoint says the node is not recording, and the next pass starts it again,
counted in the agent's metrics, and new connections are recorded once more.
On a dual-stack node it records IPv6 connections too, named as the store
names their pods."""

from __future__ import annotations

import ctypes
import json
import socket
import threading

from podnet.kernel import netns
from podnet.kernel.netlink import open_namespace
from podnet.kernel.node import NamespaceKernel
from podnet.model.meta import ObjectMeta
from podnet.model.node import Node
from podnet.model.pod import Container, Pod
from podnet.observe.recorder import FlowRecorder
from podnet.observe.server import ObserveServer
from podnet.store.snapshot import Snapshot
from tests.helpers import within

EMPTY = Snapshot(0, [], [], [], [])


class Killed(Exception):
    """What the test raises inside the recorder's thread, as a fault there would."""


def _kill(thread: threading.Thread) -> None:
    assert thread.ident is not None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(Killed))


def _connect(port: int, address: str = "10.9.0.1") -> None:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"x", (address, port))


def test_a_dead_recorder_is_shown_started_again_and_counted(make_veth_pair) -> None:  # type: ignore[no-untyped-def]
    node, client = make_veth_pair("flows0", "10.9.0.1/24", "10.9.0.2/24")
    kernel = NamespaceKernel(node)
    recorder = FlowRecorder(kernel, "n1", node)
    endpoint = netns.run_in(node, ObserveServer, "n1", recorder)  # bound in the node, asked here directly
    try:
        recorder.sync(EMPTY)
        netns.run_in(client, _connect, 1001)
        assert within(5, lambda: recorder.flows.recorded == 1)

        assert recorder._thread is not None
        _kill(recorder._thread)
        assert within(5, lambda: not recorder.recording)
        page = json.loads(endpoint.page("/flows", {})[2])
        assert (page["recording"], page["restarts"], page["failure"]) == (False, 0, "Killed: ")

        recorder.sync(EMPTY)
        assert recorder.recording and recorder.restarts == 1
        assert recorder.tally()[("podnet_flow_recorder_restarts_total", "")] == 1
        netns.run_in(client, _connect, 1002)
        assert within(5, lambda: recorder.flows.recorded == 2)
        assert json.loads(endpoint.page("/flows", {})[2])["recording"] is True
    finally:
        recorder.stop()
        endpoint._http.server_close()
        kernel.nft.close()


def test_a_dual_stack_node_records_ipv6_connections(make_veth_pair) -> None:  # type: ignore[no-untyped-def]
    node, client = make_veth_pair("flows0", "10.9.0.1/24", "10.9.0.2/24")
    for namespace, ifname, address in ((node, "flows0", "fd00:9::1/64"), (client, "eth0", "fd00:9::2/64")):
        with open_namespace(namespace) as ns:
            ns.ensure_address(ifname, address)
    me = Node(ObjectMeta("n1", namespace=""), ("10.244.0.0/24", "fd00:10:244::/64"), ("10.9.0.1", "fd00:9::1"))
    sender = Pod(ObjectMeta("client", "default"), (Container("c"),), node_name="n2", pod_ips=("10.9.0.2", "fd00:9::2"),
                 ready=True)
    kernel = NamespaceKernel(node)
    recorder = FlowRecorder(kernel, "n1", node)
    try:
        recorder.sync(Snapshot(1, [me], [sender], [], []))
        netns.run_in(client, _connect, 1003, "fd00:9::1")
        netns.run_in(client, _connect, 1004)
        assert within(5, lambda: recorder.flows.recorded == 2)
        flows = {f.destination_port: f for _, f in recorder.flows.since(0)}
        assert (flows[1003].source, flows[1003].destination, flows[1003].source_pod) == \
            ("fd00:9::2", "fd00:9::1", "default/client")
        assert flows[1003].destination_node == "n1" and flows[1004].source == "10.9.0.2"
    finally:
        recorder.stop()
        kernel.nft.close()
