"""loopback: bring the container's lo up (and down on DEL)."""

from __future__ import annotations

import os

from podnet.cni import result
from podnet.cni.errors import INVALID_CONFIG, CniError
from podnet.cni.request import CniRequest
from podnet.kernel.netlink import open_path

TYPE = "podnet-loopback"


def add(request: CniRequest) -> result.Result:
    with open_path(request.netns, "container") as container:
        container.set_up("lo")
    prev = request.config.get("prevResult")
    if isinstance(prev, dict):
        return result.Result.parse(prev)  # chained: pass the previous result on
    return result.Result(
        interfaces=(result.Interface("lo", "00:00:00:00:00:00", request.netns),),
        ips=(result.IPConfig("127.0.0.1/8", interface=0), result.IPConfig("::1/128", interface=0)),
    )


def delete(request: CniRequest) -> None:
    if request.netns and os.path.exists(request.netns):
        with open_path(request.netns, "container") as container:
            container.set_down("lo")


def check(request: CniRequest) -> None:
    with open_path(request.netns, "container") as container:
        info = container.link_info("lo")
        if not info or not info["up"]:
            raise CniError(INVALID_CONFIG, "loopback interface is down")


def gc(request: CniRequest) -> None:
    """loopback holds nothing outside the container."""


def status(request: CniRequest) -> None:
    """Always ready."""
