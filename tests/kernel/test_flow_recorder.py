"""The flow recorder in a real namespace: when its receiving thread dies, its
endpoint says the node is not recording, and the next pass starts it again,
counted in the agent's metrics, and new connections are recorded once more."""

from __future__ import annotations

import ctypes
import json
import socket
import threading

from podnet.kernel import netns
from podnet.kernel.node import NamespaceKernel
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


def _connect(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"x", ("10.9.0.1", port))


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
