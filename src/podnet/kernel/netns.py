"""Network namespaces: create, delete, find, and run code or commands inside them.

Namespaces are the named kind that ``ip netns`` shows (bind mounts under /run/netns),
so users can look inside a lab with the tools they already know.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from podnet.errors import KernelError

PREFIX = "pn-"
OWN = "/proc/thread-self/ns/net"  # the calling thread's own namespace, whatever it is
NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

T = TypeVar("T")


def check_name(name: str) -> str:
    """Refuse names podnet does not own; the root namespace has no name at all."""
    if not name.startswith(PREFIX) or "/" in name or name in (".", "..") or len(name) > 200:
        raise KernelError(f"refusing to touch network namespace {name!r}: podnet only manages names starting with {PREFIX!r}")
    return name


def path(name: str) -> Path:
    """A podnet namespace's file, or for OWN (a node agent on a real machine, or
    started inside a node namespace as its unit says) the caller's own: the
    machine's root namespace only where its operator allowed it."""
    if name == OWN:
        guard_root(OWN, "a node agent in its own namespace")
        return Path(OWN)
    return NETNS_DIR / check_name(name)


def exists(name: str) -> bool:
    return path(name).exists()


def is_live(name: str) -> bool:
    """A namespace is bound at its file: not the bare file a create cut short
    (killed between making the file and mounting the namespace on it) leaves."""
    try:
        return os.stat(path(name)).st_dev == os.stat("/proc/self/ns/net").st_dev  # every namespace is on nsfs
    except OSError:
        return False


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    """Namespaces whose names start with prefix (which must itself be podnet's)."""
    check_name(prefix)
    if not NETNS_DIR.is_dir():
        return []
    return sorted(entry for entry in os.listdir(NETNS_DIR) if entry.startswith(prefix))


def create(name: str) -> None:
    """Create the namespace (if missing) with its loopback up, as containers expect.

    As `ip netns add` does it, but on a short-lived thread of this process rather
    than in a forked copy of it: the thread unshares its network namespace, brings
    lo up and binds it under /run/netns. An agent making twenty pods at once forks
    nothing."""
    target = path(name)
    if target.exists():
        return
    _share_netns_dir()
    try:
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except FileExistsError:
        return  # made meanwhile by someone else
    outcome: dict[str, OSError] = {}

    def bind_new_namespace() -> None:
        try:
            _libc_call("unshare", _libc.unshare(_CLONE_NEWNET))
            _loopback_up()
            _libc_call("mount", _libc.mount(OWN.encode(), str(target).encode(), b"none", _MS_BIND, None))
        except OSError as err:
            outcome["error"] = err

    thread = threading.Thread(target=bind_new_namespace, name=f"netns-create:{name}")
    thread.start()
    thread.join()
    if "error" in outcome:
        target.unlink(missing_ok=True)
        err = outcome["error"]
        raise KernelError(f"cannot create network namespace {name}: {err.strerror or err}")


_MS_BIND, _MS_REC, _MS_SHARED = 0x1000, 0x4000, 0x100000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: the name, then ifr_flags in its 24-byte union


def _loopback_up() -> None:
    """lo up in the calling thread's namespace, as `ifconfig lo up` does it.

    Two ioctls on the thread that has just made the namespace, rather than a
    netlink handle: the handle (netlink.py) is built on this module, so this
    module must not need it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = bytearray(_IFREQ.pack(b"lo", 0))
        fcntl.ioctl(sock, _SIOCGIFFLAGS, request)
        _, flags = _IFREQ.unpack(request)
        fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))


def _libc_call(what: str, result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


@functools.cache
def _share_netns_dir() -> None:
    """/run/netns as a shared mount, as iproute2 makes it, so the namespaces bound
    under it are seen from every mount namespace (pods' `ip netns exec` ones)."""
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    directory = str(NETNS_DIR).encode()
    if _libc.mount(b"", directory, b"none", _MS_SHARED | _MS_REC, None) == 0:
        return
    _libc_call("mount", _libc.mount(directory, directory, b"none", _MS_BIND | _MS_REC, None))
    _libc_call("mount", _libc.mount(b"", directory, b"none", _MS_SHARED | _MS_REC, None))


ETC_NETNS = Path("/etc/netns")


def write_etc(name: str, filename: str, content: str) -> None:
    """A file `ip netns exec` mounts over /etc/<filename> for this namespace only
    (how a pod gets its own resolv.conf without touching the machine's)."""
    directory = ETC_NETNS / check_name(name)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / filename).write_text(content)


def delete(name: str) -> None:
    """Delete the namespace, and its /etc/netns files; links inside it go with it.
    Missing is fine."""
    if (ETC_NETNS / check_name(name)).exists():
        shutil.rmtree(ETC_NETNS / name, ignore_errors=True)
        try:
            ETC_NETNS.rmdir()  # only if empty: leave /etc as we found it
        except OSError:
            pass
    target = path(name)
    if not target.exists():
        return
    from pyroute2 import netns as pr_netns

    try:
        pr_netns.remove(name)
    except OSError as err:
        raise KernelError(f"cannot delete network namespace {name}: {err.strerror or err}") from err


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@functools.cache
def _root_identity() -> tuple[int, int]:
    """The machine's own network namespace: init's, or (where init is hidden from
    us) kthreadd's, since kernel threads always live in the initial namespace."""
    for pid in (1, 2):
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        return st.st_dev, st.st_ino
    raise KernelError("cannot tell which network namespace is the machine's own (/proc/1 and /proc/2 are hidden)")


def is_root(ns_path: str | Path) -> bool:
    """Whether the namespace file is the machine's own (initial) network namespace."""
    target = os.stat(ns_path)
    return (target.st_dev, target.st_ino) == _root_identity()


def guard_root(ns_path: str | Path, purpose: str) -> None:
    """Refuse to change the machine's own namespace unless this is a real node
    whose operator said so (PODNET_ALLOW_ROOT_NETNS=1)."""
    if os.environ.get("PODNET_ALLOW_ROOT_NETNS") != "1" and is_root(ns_path):
        raise KernelError(f"refusing to change the root network namespace ({purpose}); "
                          "on a real node set PODNET_ALLOW_ROOT_NETNS=1")


def run_in(name: str, fn: Callable[..., T], *args: object) -> T:
    """Call fn inside the named podnet namespace."""
    return run_in_path(path(name), fn, *args)


def run_in_path(ns_path: str | Path, fn: Callable[..., T], *args: object) -> T:
    """Call fn inside the namespace at ns_path, on a short-lived thread that alone
    switches. The thread dies after the call, so the caller's own namespace never
    changes. Sockets opened by fn belong to the namespace.
    """
    if str(ns_path) == OWN:
        return fn(*args)  # the caller's thread is there already: no thread to switch
    outcome: dict[str, object] = {}
    fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)  # opened here: thread-self means the caller

    def target() -> None:
        try:
            _setns(fd)
            outcome["value"] = fn(*args)
        except BaseException as err:  # handed back to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=target, name=f"netns:{ns_path}")
    try:
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def enter_argv(ns_path: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs a command in the namespace at ns_path (no /etc remounts):
    how a runtime on a node execs CNI plugins there."""
    guard_root(ns_path, f"running {argv[0]}")
    return ["nsenter", f"--net={ns_path}", "--", *argv]


def exec_argv(name: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs a command in the namespace as ``ip netns exec`` does.

    ip netns exec also mounts /etc/netns/<name>/* over /etc, which is how a pod gets
    its own resolv.conf and hosts without touching the machine's files.
    """
    if name == OWN:
        path(name)  # refused in the root namespace unless allowed
        return list(argv)
    return ["ip", "netns", "exec", check_name(name), *argv]


def run(
    name: str,
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float | None = 30,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion inside the named namespace and capture its output."""
    return run_path(str(path(name)), argv, input=input, check=check, timeout=timeout)


def run_path(
    ns_path: str,
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float | None = 30,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion inside the namespace at ns_path."""
    try:
        proc = subprocess.run(
            ["nsenter", f"--net={ns_path}", "--", *argv],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        raise KernelError(f"{ns_path}: {' '.join(argv)} did not finish within {timeout} s") from err
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise KernelError(f"{ns_path}: {' '.join(argv[:2])} failed: {detail[0] if detail else proc.returncode}")
    return proc


def spawn(name: str, argv: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None,
          own_etc: bool = True, pass_fds: Sequence[int] = ()) -> int:
    """Start a long-running process in the namespace, detached from our session.

    With own_etc (a pod's command) it runs as under `ip netns exec`, which gives it
    a mount namespace of its own. Without (an agent), it stays in ours, so the
    namespaces it creates for pods are mounted where everyone sees them.
    pass_fds: our descriptors it inherits (a socket opened here, in another namespace)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            exec_argv(name, argv) if own_etc else enter_argv(str(path(name)), argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )
    return proc.pid


def processes_in(names: Sequence[str]) -> list[int]:
    """Pids whose network namespace is one of these (found through /proc, not records)."""
    return [pid for pids in processes_by_namespace(names).values() for pid in pids]


def processes_by_namespace(names: Sequence[str]) -> dict[str, list[int]]:
    """Each namespace's pids, from one walk of /proc however many namespaces."""
    targets = {}
    for name in names:
        try:
            st = os.stat(path(name))
        except FileNotFoundError:
            continue
        targets[(st.st_dev, st.st_ino)] = name
    found: dict[str, list[int]] = {name: [] for name in targets.values()}
    if not targets:
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        name = targets.get((st.st_dev, st.st_ino))
        if name is not None:
            found[name].append(int(entry))
    return found


def kill_processes_in(names: Sequence[str], grace: float = 2.0) -> None:
    """TERM every process in these namespaces, then KILL whatever is left after grace."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        pids = processes_in(names)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and processes_in(names):
            _reap(pids)
            time.sleep(0.02)
        left = set(processes_in(names))
        _reap([pid for pid in pids if pid not in left], patience=1.0)
    survivors = processes_in(names)
    if survivors:
        raise KernelError(f"processes {survivors} survived SIGKILL in {', '.join(names)}")


def _reap(pids: Sequence[int], patience: float = 0.0) -> None:
    """Collect our own exited children so they do not linger as zombies. A process
    leaves its namespace before its parent can collect it, so a child already gone
    from the namespace is given `patience` seconds to become collectable."""
    deadline = time.monotonic() + patience
    for pid in pids:
        while True:
            try:
                collected, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break  # not our child, or collected already
            if collected or time.monotonic() >= deadline:
                break
            time.sleep(0.005)
