"""The web view a lab starts on `lab up --ui`: `podnet ui` in the background,
in the machine's own namespace (where the browser is), on loopback; `lab down`
stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from podnet.lab.state import LabRecord

PID_FILE = "ui.pid"


def start(record: LabRecord, port: int) -> str:
    """Starts the lab's web view; returns its address."""
    log = record.log_path("ui")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "podnet", "ui", "--lab", record.name, "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    (record.directory / PID_FILE).write_text(str(process.pid))
    return f"http://127.0.0.1:{port}/"


def stop(directory: Path) -> None:
    """Stops the web view a lab started, if it runs (and is still ours: a pid is reused)."""
    pid_file = directory / PID_FILE
    try:
        pid = int(pid_file.read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    finally:
        pid_file.unlink(missing_ok=True)
    if b"podnet" in command and b"ui" in command:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
