"""A simulation attached to an existing Ray cluster (RAY_ADDRESS), through the real `flwr run`."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.flower_runs import TINY, run_flower


def assert_two_round_run(run_dir: Path, clients: int) -> None:
    table = pd.read_csv(run_dir / "metrics.csv")
    assert table["round"].tolist() == [0, 1, 2]
    assert (table["rsum"] > 0).all()  # finite and not a diverged model (which scores 0, semfed.metrics)
    assert (table.loc[1:, "clients_replied"] == clients).all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head of our own (`ray start --head --block`, own process group and temp dir); stopped by
    killing that group and anything still running from its temp dir (`ray stop` would stop every Ray
    on the machine)."""
    temp_dir = Path("/tmp") / f"semfed-rayhead-{os.getpid()}"  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                             f"--port={port}", "--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp_dir}",
                             "--include-dashboard=false", f"--dashboard-port={free_port()}", "--disable-usage-stats", "--object-store-memory=300000000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not (temp_dir / "ray_current_cluster").exists() and time.monotonic() < deadline:
        assert head.poll() is None, "ray start --head exited"
        time.sleep(1)
    time.sleep(3)
    try:
        yield address, temp_dir
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(temp_dir) in " ".join(p.info["cmdline"] or [])]
        for p in leftovers:
            p.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_simulation_attaches_to_an_existing_ray_cluster_through_ray_address(ray_head, tmp_path, monkeypatch):
    address, temp_dir = ray_head
    monkeypatch.setenv("RAY_ADDRESS", address)  # the managed SuperLink `flwr run` starts passes it to the simulation
    result = run_flower(tmp_path, f"run-name='ray' num-server-rounds=2 {TINY}", 3, 39520)
    superlink_log = tmp_path / "flwr-home" / "local-superlink" / "superlink.log"
    assert result.returncode == 0, (result.stdout[-3000:] + result.stderr[-3000:] +
                                    (superlink_log.read_text()[-3000:] if superlink_log.exists() else ""))
    assert_two_round_run(tmp_path / "runs" / "ray", clients=3)
    logs = list((temp_dir / "session_latest" / "logs").glob("worker-*"))  # the ClientApp actors ran on our head
    assert any("ClientAppActor" in p.read_text(errors="ignore") for p in logs)
