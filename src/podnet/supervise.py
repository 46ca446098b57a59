"""A lab's supervisor for one long-running process, as systemd's Restart=always:
the command is started again whenever it exits, after a back-off that doubles
from BACKOFF_FIRST to BACKOFF_MAX and starts over once a run has lasted
STEADY seconds. SIGTERM or SIGINT stop it and the command for good.

    python -m podnet.supervise [--pass-fd=N ...] -- COMMAND...

The command learns how often it was restarted from $PODNET_RESTARTS (an agent
publishes it on its Node), and inherits the descriptors named by --pass-fd (a
listening socket the lab opened for it), so every restart serves the same socket.
Only the standard library, so it starts in milliseconds and costs little beside
each agent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
STEADY = 10.0  # a run this long resets the back-off


def supervise(argv: list[str], stop: threading.Event, pass_fds: tuple[int, ...] = ()) -> int:
    restarts = 0
    delay = BACKOFF_FIRST
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv, env={**os.environ, "PODNET_RESTARTS": str(restarts)}, pass_fds=pass_fds)
        while child.poll() is None:
            if stop.wait(0.1):
                child.terminate()
                return child.wait()
        if stop.is_set():
            return child.returncode
        delay = BACKOFF_FIRST if time.monotonic() - started >= STEADY else delay
        how = f"was killed by {signal.Signals(-child.returncode).name}" if child.returncode < 0 \
            else f"exited with {child.returncode}"
        print(f"podnet supervise: {' '.join(argv[:4])} {how}; restarting in {delay:g} s", file=sys.stderr, flush=True)
        if stop.wait(delay):
            return child.returncode
        delay = min(delay * 2, BACKOFF_MAX)
        restarts += 1


def main() -> None:
    argv = sys.argv[1:]
    options = argv[:argv.index("--")] if "--" in argv else []
    pass_fds = tuple(int(a.removeprefix("--pass-fd=")) for a in options if a.startswith("--pass-fd="))
    argv = argv[len(options) + 1:] if "--" in argv else argv
    if not argv:
        sys.exit("usage: python -m podnet.supervise [--pass-fd=N ...] -- COMMAND...")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=stop.set).start())  # not set() here: the
        # handler may run while this thread holds stop's lock, inside stop.wait, and would wait for itself
    sys.exit(supervise(argv, stop, pass_fds))


if __name__ == "__main__":
    main()
