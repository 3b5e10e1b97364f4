"""Run the semfed app through the real `flwr run` (scripts/flwr_run.sh) from a test."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def flower_env(work_dir: Path, port: int) -> dict[str, str]:
    """Environment of a simulation with its own Flower home and SuperLink ports `port` / `port + 2` (a user's
    run may hold the defaults), this interpreter's environment first on PATH."""
    return {**os.environ, "FLWR_HOME": str(work_dir / "flwr-home"), "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(port),
            "FLWR_LOCAL_CONTROL_API_PORT": str(port + 2), "PYTHONPATH": str(ROOT),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def flower_command(work_dir: Path, run_config: str, num_supernodes: int) -> list[str]:
    return ["bash", str(ROOT / "scripts/flwr_run.sh"), f"work-dir='{work_dir}' {run_config}",
            f"num-supernodes={num_supernodes} client-resources-num-cpus=1"]


def run_flower(work_dir: Path, run_config: str, num_supernodes: int, port: int) -> subprocess.CompletedProcess:
    """Run the app through scripts/flwr_run.sh in the simulation of flower_env; output captured."""
    return subprocess.run(flower_command(work_dir, run_config, num_supernodes), cwd=ROOT,
                          env=flower_env(work_dir, port), capture_output=True, text=True, timeout=900)
