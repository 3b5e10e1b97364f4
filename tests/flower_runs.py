"""Run the semfed app from a test: through the real `flwr run` (scripts/flwr_run.sh), or in this process
(server/in_process.py: the same ServerApp and ClientApp, messages through Flower's wire format, no SuperLink
or Ray), which costs seconds instead of a minute of start-up. Real runs are kept for what only they show."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from flwr.common.config import parse_config_args

from semfed.config import SemfedConfig, from_overrides
from server.in_process import run_in_process

ROOT = Path(__file__).resolve().parent.parent
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # pytest-xdist runs test files in parallel workers gw0, gw1, ...
CACHES = ("data", "detectors", "features")  # what a run computes once per dataset and frozen encoder (written atomically)
SHARED_CACHE = Path()  # set by tests/conftest.py: one folder for the whole session, every worker


def worker_port(port: int) -> int:
    """`port` moved into this worker's own range (worker k: port + 1000 k), so parallel runs never share a port."""
    return port + 1000 * int(WORKER.removeprefix("gw"))


def share_caches(work_dir: Path) -> None:
    """Link work_dir's scene, detector and feature caches to the session's shared ones, so that the scenes
    are generated and the frozen encoders run once per session rather than once per run."""
    for name in CACHES:
        (SHARED_CACHE / name).mkdir(parents=True, exist_ok=True)
        if not (work_dir / name).exists():
            (work_dir / name).symlink_to(SHARED_CACHE / name, target_is_directory=True)


def run_flower(work_dir: Path, run_config: str, num_supernodes: int, port: int,
               fresh_cache: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A simulation with its own Flower home, SuperLink ports `port` / `port + 2` in this worker's range (a
    user's run may hold the defaults) and Ray temp dir, this interpreter's environment first on PATH; output
    captured. Its caches are the session's shared ones unless `fresh_cache` (then computed in work_dir);
    `env`: variables added to this process's (e.g. RAY_ADDRESS)."""
    port = worker_port(port)
    work_dir.mkdir(parents=True, exist_ok=True)
    if not fresh_cache:
        share_caches(work_dir)
    env = {**os.environ, **(env or {}), "FLWR_HOME": str(work_dir / "flwr-home"), "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(port),
           "FLWR_LOCAL_CONTROL_API_PORT": str(port + 2), "RAY_TMPDIR": f"/tmp/semfed-ray-{WORKER}", "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(ROOT / "scripts/flwr_run.sh"), f"work-dir='{work_dir}' {run_config}",
                           f"num-supernodes={num_supernodes} client-resources-num-cpus=1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


# The tiny runs test the federation's plumbing: their detectors are only BatchNorm-adapted (attribute
# pre-training has tests of its own), so that a tiny run's untrained round 0 stays near chance and its
# RSUM can be seen to improve (pre-trained features put 12 test images at RSUM ~260 before any round).
TINY = ("scenes-train=48 scenes-val=4 scenes-test=12 batch-size=16 max-regions=4 detector-adaptation='batchnorm' "
        "region-features='box-head' "
        "clients='frcnn-mnv3+minilm:1;frcnn-mnv3:1;minilm:2' partitioning='iid'")


def tiny_config(work_dir: Path, **changes) -> SemfedConfig:
    """The tiny config (with `changes`, field names with '_') in work_dir, whose caches are the session's
    shared ones: tests that need its scenes and features share one extraction."""
    work_dir.mkdir(parents=True, exist_ok=True)
    share_caches(work_dir)
    cfg = from_overrides(parse_config_args([f"work-dir='{work_dir}' {TINY}"]))
    return cfg.replace(**changes) if changes else cfg


def tiny_run(work_dir: Path, run_name: str, extra: str = "", rounds: int = 2, fresh_cache: bool = False,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The tiny retrieval config on 3 SuperNodes, with run-config overrides in `extra`."""
    return run_flower(work_dir, f"run-name='{run_name}' num-server-rounds={rounds} {TINY} {extra}", 3, 39191,
                      fresh_cache, env)


def in_process(work_dir: Path, run_config: str, num_nodes: int | None = None, fresh_cache: bool = False) -> Path:
    """`run_config` run in this process on `num_nodes` nodes (default: as many as it needs), on one torch
    thread (as a virtual client with one CPU; test workers share the cores); returns its run directory
(`run_config` names the run).
    Raises what the ServerApp raises."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if not fresh_cache:
        share_caches(work_dir)
    overrides = parse_config_args([f"work-dir='{work_dir}' {run_config}"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_in_process(overrides, num_nodes)
    finally:
        torch.set_num_threads(threads)
    return work_dir / "runs" / overrides["run-name"]


def tiny_in_process(work_dir: Path, run_name: str, extra: str = "", rounds: int = 2, fresh_cache: bool = False) -> Path:
    """The tiny retrieval config in this process, with run-config overrides in `extra`; its run directory."""
    return in_process(work_dir, f"run-name='{run_name}' num-server-rounds={rounds} {TINY} {extra}", fresh_cache=fresh_cache)
