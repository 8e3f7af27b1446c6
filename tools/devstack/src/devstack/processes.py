"""Start, find and stop long-running local processes through pid files."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class StackError(RuntimeError):
    pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def spawn(
    command: Sequence[str],
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` in its own session (it outlives this process), logging to a file."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    pid_file.write_text(str(process.pid))
    return process


def stop_pid(pid: int, timeout_s: float = 30.0, sig: int = signal.SIGTERM) -> bool:
    """Signal `pid` and wait for it to exit; SIGKILL after the timeout. True if it was running."""
    if not pid_alive(pid):
        return False
    os.kill(pid, sig)
    if wait_until(lambda: not pid_alive(pid), timeout_s, raise_on_timeout=False):
        return True
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10, raise_on_timeout=False)
    return True


def stop(pid_file: Path, timeout_s: float = 30.0) -> bool:
    pid = read_pid(pid_file)
    stopped = stop_pid(pid, timeout_s) if pid else False
    pid_file.unlink(missing_ok=True)
    return stopped


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str = "condition",
    interval_s: float = 0.1,
    raise_on_timeout: bool = True,
) -> bool:
    """Poll `condition` until true or the deadline; the bounded wait used everywhere."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            if raise_on_timeout:
                raise StackError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            return False
        time.sleep(interval_s)
