"""A single-machine Ray head on the loopback address, for trying ``sweep run --engine ray`` on one machine, for the
tests and for ``scripts/bench_sweep.py``: started with ``ray start --head`` in its own temp dir, and stopped by
ending only its own processes (``ray stop`` would end every Ray on the machine). Linux only (it reads ``/proc``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["LOOPBACK_ONLY", "LocalRayHead", "free_port", "processes_of"]

#: Ray's switch for a single-machine cluster: its nodes take the loopback address (127.0.0.1) instead of the
#: machine's network address (Ray otherwise replaces 127.0.0.1 by it), so that all its traffic stays on loopback
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_of(temp_dir: str) -> set[int]:
    """The processes of the Ray head whose temp dir is ``temp_dir``: those whose command line names it, or that hold
    a file in it open (Ray's workers and agents rename themselves ``ray::...`` but keep their logs there)."""
    if not temp_dir.startswith("/") or temp_dir.rstrip("/") in ("", "/tmp"):
        raise ValueError(f"not a Ray head's own temp dir: {temp_dir!r}")
    inside, named = temp_dir.rstrip("/") + "/", temp_dir.rstrip("/") + "\0"
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            if inside in cmdline or named in cmdline or \
                    any(os.readlink(fd).startswith(inside) for fd in (entry / "fd").iterdir()):
                found.add(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


class LocalRayHead:
    """``with LocalRayHead(num_cpus=2) as head: ... head.address ...``: a Ray head on ``127.0.0.1`` with
    ``num_cpus`` CPUs; this process's environment gets :data:`LOOPBACK_ONLY` while it runs, so that drivers started
    from it connect on loopback too.

    Args:
        num_cpus: the CPUs the head offers to tasks.
        ray_bin: the ``ray`` command (default: the one beside this interpreter).
    """

    def __init__(self, num_cpus: int = 2, ray_bin: str | Path | None = None) -> None:
        if num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1, got {num_cpus}")
        self.num_cpus = num_cpus
        self.ray_bin = str(ray_bin or Path(sys.executable).parent / "ray")
        self.address = ""
        self.temp_dir = ""
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> LocalRayHead:
        # short: Ray's socket paths under it must fit in 107 bytes
        self.temp_dir = tempfile.mkdtemp(prefix="ssray-", dir="/tmp")
        port = free_port()
        self._saved = {name: os.environ.get(name) for name in LOOPBACK_ONLY}
        os.environ.update(LOOPBACK_ONLY)
        try:
            subprocess.run([self.ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                            "--num-cpus", str(self.num_cpus), "--disable-usage-stats", "--include-dashboard",
                            "false", "--temp-dir", self.temp_dir], check=True, capture_output=True, timeout=180)
        except BaseException:
            self.stop()
            raise
        self.address = f"127.0.0.1:{port}"
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """End this head's processes (SIGTERM, then SIGKILL after 2 s: Ray's agents may ignore SIGTERM), remove
        its temp dir, restore the environment."""
        if not self.temp_dir:
            return
        for sig, wait_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            for pid in processes_of(self.temp_dir):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and processes_of(self.temp_dir):
                time.sleep(0.2)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}
