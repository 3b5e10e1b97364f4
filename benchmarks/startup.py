"""Start-up: wall time from the command to the end of round 1 (its 'round 1/1' log line) and to exit, for
the tiny config (3 clients), through `flwr run` (scripts/flwr_run.sh: SuperLink, Ray, 3 virtual clients)
and in one process (server/in_process.py); and what importing each heavy package costs a fresh process
(every Ray actor, ServerApp and deployment ClientApp pays it). Features are cached by a warm-up run first,
so the figures are start-up, not extraction. Medians of `--repeats` runs, side by side.

    .venv/bin/python -m benchmarks.startup [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ("num-server-rounds=1 scenes-train=48 scenes-val=4 scenes-test=12 batch-size=16 max-regions=4 "
        "clients='frcnn-mnv3+minilm:1;frcnn-mnv3:1;minilm:2' partitioning='iid'")
IMPORTS = ("torch", "transformers", "torch_geometric", "flwr.serverapp", "clients.app", "semfed.retrieval.training")


def timed(command: list[str], env: dict, marker: str | None = None) -> tuple[float, float]:
    """(seconds until a line containing `marker` is printed, seconds until exit); raises if it fails."""
    start, seen = time.perf_counter(), float("nan")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        output.append(line)
        if marker and marker in line and math.isnan(seen):
            seen = time.perf_counter() - start
    if process.wait():
        raise RuntimeError(f"{command} failed:\n{''.join(output[-30:])}")
    return seen, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="semfed-startup-"))
    env = {**os.environ, "FLWR_HOME": str(work / "flwr-home"), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    config = f"work-dir='{work}' {TINY}"
    in_process = [sys.executable, "-m", "server.in_process"]
    timed(in_process + [f"{config} run-name='warm-up'"], env)  # data, detectors and features into the cache
    rows: dict[str, list[tuple[float, float]]] = {}
    for i in range(args.repeats):
        rows.setdefault("`flwr run` (scripts/flwr_run.sh)", []).append(
            timed(["bash", "scripts/flwr_run.sh", f"{config} run-name='flwr-{i}'"], env, "round 1/1"))
        rows.setdefault("in one process (server/in_process.py)", []).append(
            timed(in_process + [f"{config} run-name='local-{i}'"], env, "round 1/1"))
        for module in IMPORTS:
            rows.setdefault(f"`import {module}` in a fresh process", []).append(
                timed([sys.executable, "-c", f"import {module}"], env))
    print(f"| what (tiny config, features cached; median of {args.repeats}) | to the end of round 1 | to exit |")
    print("|---|---|---|")
    for name, runs in rows.items():
        first = [r[0] for r in runs if not math.isnan(r[0])]
        print(f"| {name} | {f'{statistics.median(first):.1f} s' if first else ''} | "
              f"{statistics.median(r[1] for r in runs):.1f} s |")


if __name__ == "__main__":
    main()
