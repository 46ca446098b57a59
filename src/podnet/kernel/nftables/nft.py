"""The nft backend: a transaction rendered as an nft script and loaded in one go.

Scripts go to libnftables in-process (through ctypes) on a thread inside the
namespace: the same parser and the same transaction as the `nft` command, without
a fork and exec per call, which is most of a CNI ADD's budget. Without the
library, the `nft` command does it. Either way the kernel applies the whole
script or none of it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
from typing import Any

from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.nftables.objects import Element, Table
from podnet.kernel.nftables.rules import Verdict
from podnet.kernel.nftables.script import script
from podnet.kernel.nftables.transaction import Transaction


@functools.cache
def _libnftables() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("nftables")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    return lib


def _run_in_process(script: str, json_output: bool = False) -> str:
    """Runs on a thread already inside the target namespace."""
    lib = _libnftables()
    assert lib is not None
    ctx = lib.nft_ctx_new(0)
    try:
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        if json_output:
            lib.nft_ctx_output_set_flags(ctx, 1 << 4)  # NFT_CTX_OUTPUT_JSON
        if lib.nft_run_cmd_from_buffer(ctx, script.encode()) != 0:
            error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode().strip().splitlines()
            raise KernelError(f"nft: {error[0] if error else 'failed'}")
        return (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
    finally:
        lib.nft_ctx_free(ctx)


def _nft(ns_path: str, script: str, json_output: bool = False) -> str:
    if _libnftables() is not None:
        return netns.run_in_path(ns_path, _run_in_process, script, json_output)
    argv = ["nft", "-j", "-f", "-"] if json_output else ["nft", "-f", "-"]
    return netns.run_path(ns_path, argv, input=script).stdout


def _json_value(value: Any) -> tuple[str, ...]:
    if isinstance(value, dict) and "concat" in value:
        return tuple(str(part) for part in value["concat"])
    if isinstance(value, dict) and "elem" in value:
        return _json_value(value["elem"]["val"])
    return (str(value),)


def _json_element(set_name: str, item: Any) -> Element:
    if not isinstance(item, list):
        return Element(set_name, _json_value(item))
    key, value = item  # a map's [key, value]; a verdict is {"goto": {"target": ...}} or {"drop": null}
    if isinstance(value, dict) and len(value) == 1:
        ((kind, target),) = value.items()
        if kind in ("jump", "goto", "accept", "drop", "return"):
            return Element(set_name, _json_value(key), Verdict(kind, target["target"] if target else None))
    return Element(set_name, _json_value(key), _json_value(value))


class Nft:
    """nftables in one network namespace, through nft's script interface."""

    def __init__(self, ns_path: str) -> None:
        self.ns_path = ns_path

    @classmethod
    def in_namespace(cls, name: str) -> Nft:
        """A podnet namespace by name (pn-...)."""
        return cls(str(netns.path(name)))

    def run(self, tx: Transaction) -> None:
        if not tx:
            return
        netns.guard_root(self.ns_path, "nftables")
        _nft(self.ns_path, script(tx))

    def list_elements(self, table: Table, set_name: str, kind: str = "set") -> list[Element]:
        """A set's or map's elements; none when the table or the set does not exist."""
        try:
            listing = _nft(self.ns_path, f"list {kind} {table.text()} {set_name}", json_output=True)
        except KernelError as err:
            if "No such file or directory" in str(err):
                return []
            raise
        elements = []
        for item in json.loads(listing).get("nftables", []):
            for element in item.get(kind, {}).get("elem", []):
                elements.append(_json_element(set_name, element))
        return elements

    def list_ruleset(self) -> str:
        """The namespace's whole ruleset, as `nft list ruleset` prints it."""
        return _nft(self.ns_path, "list ruleset")
