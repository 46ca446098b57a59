"""The exec'd plugin binary: relay the invocation to this node's agent and print
its answer; without an agent, do the work in this process.

A runtime execs a plugin for every ADD and DEL, so this module is on the hot
path: it imports only interpreter built-ins (posix, _socket, sys); json, socket
and pyroute2 cost more than the whole relay. The launchers run it under
`python -IS`, so not even site-packages is set up unless the fallback needs it.

Wire format to the agent (a unix socket, mode 0600):
    request:  b"<plugin>\\0<len(env)>\\0<len(stdin)>\\n" + env + stdin, env being
              the CNI_* variables as NUL-separated KEY=VALUE
    response: b"<exit code>\\n" + what the plugin prints on stdout
"""

import posix
import sys

import _socket

AGENT_DIR = "/run/podnet/agents"


def socket_path_for(netns_path: str) -> str:
    """Each agent listens at a path named after its network namespace, and a
    plugin runs in the namespace of the node it serves, so it finds its own."""
    return f"{AGENT_DIR}/net-{posix.stat(netns_path).st_ino}.sock"


def agent_socket_path() -> str:
    override = posix.environ.get(b"PODNET_AGENT_SOCKET")
    return override.decode() if override else socket_path_for("/proc/self/ns/net")


def encode_request(plugin: str, env: bytes, stdin: bytes) -> bytes:
    return b"%s\0%d\0%d\n" % (plugin.encode(), len(env), len(stdin)) + env + stdin


def relay(plugin: str, env: bytes, stdin: bytes, path: str) -> tuple[int, bytes] | None:
    """The agent's answer, or None when no agent listens (so the caller falls back)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    try:
        sock.sendall(encode_request(plugin, env, stdin))
        sock.shutdown(_socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    head, _, body = b"".join(chunks).partition(b"\n")
    if not head.isdigit():
        return None  # the agent died mid-request; do the work here
    return int(head), body


def run_in_process(plugin: str, stdin: bytes) -> tuple[int, bytes]:
    import site

    site.main()  # -S skipped it; the fallback needs the installed dependencies
    from podnet.cni.dispatch import handle

    return handle(plugin, {k.decode(): v.decode() for k, v in posix.environ.items()}, stdin)


def main(plugin: str) -> None:
    env = b"\0".join(k + b"=" + v for k, v in posix.environ.items() if k.startswith(b"CNI_"))
    stdin = b"" if posix.environ.get(b"CNI_COMMAND") == b"VERSION" and sys.stdin.isatty() else sys.stdin.buffer.read()
    answer = relay(plugin, env, stdin, agent_socket_path()) or run_in_process(plugin, stdin)
    sys.stdout.buffer.write(answer[1])
    sys.stdout.buffer.flush()
    posix._exit(answer[0])
