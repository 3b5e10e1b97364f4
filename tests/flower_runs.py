"""Run the semfed app through the real `flwr run` (scripts/flwr_run.sh) from a test."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_flower(work_dir: Path, run_config: str, num_supernodes: int, port: int) -> subprocess.CompletedProcess:
    """A simulation with its own Flower home and SuperLink ports `port` / `port + 2` (a user's run may
    hold the defaults), this interpreter's environment first on PATH; output captured."""
    env = {**os.environ, "FLWR_HOME": str(work_dir / "flwr-home"), "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(port),
           "FLWR_LOCAL_CONTROL_API_PORT": str(port + 2), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(ROOT / "scripts/flwr_run.sh"), f"work-dir='{work_dir}' {run_config}",
                           f"num-supernodes={num_supernodes} client-resources-num-cpus=1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
