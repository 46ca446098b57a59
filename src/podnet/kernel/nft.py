"""nftables inside a namespace: whole tables replaced in one atomic transaction.

Scripts go to libnftables in-process (through ctypes) on a thread inside the
namespace: the same parser and the same transaction as the `nft` command, without
a fork and exec per call, which is most of a CNI ADD's budget. Without the
library, the `nft` command does it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from podnet.errors import KernelError
from podnet.kernel import netns


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


def replace_table(namespace: str, family: str, name: str, body: str) -> None:
    """Make the table exactly `body` (its chains, sets and maps), atomically.

    Declaring the table, deleting it and declaring it again in one `nft -f`
    is a single transaction: a packet sees the old ruleset or the new one.
    """
    script = f"table {family} {name} {{}}\ndelete table {family} {name}\ntable {family} {name} {{\n{body}\n}}\n"
    _nft(str(netns.path(namespace)), script)


def delete_table(namespace: str, family: str, name: str) -> None:
    _nft(str(netns.path(namespace)), f"table {family} {name} {{}}\ndelete table {family} {name}\n")


def ruleset(namespace: str) -> str:
    return _nft(str(netns.path(namespace)), "list ruleset")


def run_script(ns_path: str, script: str) -> None:
    """One transaction in the namespace at ns_path (a CNI host namespace)."""
    netns.guard_root(ns_path, "nftables")
    _nft(ns_path, script)


def list_json(ns_path: str, *what: str) -> str:
    """A listing as nft's JSON; empty when the object does not exist."""
    try:
        return _nft(ns_path, "list " + " ".join(what), json_output=True)
    except KernelError:
        return ""
