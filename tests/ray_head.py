"""A Ray head of the test's own, for a simulation attached to an existing Ray cluster (RAY_ADDRESS)."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.flower_runs import WORKER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ray_head():
    """`ray start --head --block` in its own process group and temp dir; yields (address, temp dir). Stopped
    by killing that group and anything still running from its temp dir (`ray stop` would stop every Ray on
    the machine)."""
    temp_dir = Path("/tmp") / f"semfed-rayhead-{os.getpid()}-{WORKER}"  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                             f"--port={port}", "--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp_dir}",
                             "--include-dashboard=false", f"--dashboard-port={free_port()}", "--disable-usage-stats",
                             "--object-store-memory=300000000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (temp_dir / "ray_current_cluster").exists() and time.monotonic() < deadline:
        assert head.poll() is None, "ray start --head exited"
        time.sleep(1)
    time.sleep(3)
    try:
        yield f"127.0.0.1:{port}", temp_dir
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        for p in psutil.process_iter(["cmdline"]):
            if str(temp_dir) in " ".join(p.info["cmdline"] or []):
                p.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def actors_ran_on(temp_dir: Path) -> bool:
    """Whether Flower's ClientApp actors ran on the head whose temp dir this is (its worker logs)."""
    return any("ClientAppActor" in p.read_text(errors="ignore")
               for p in (temp_dir / "session_latest" / "logs").glob("worker-*"))
