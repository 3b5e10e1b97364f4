"""Start-up: wall time from the command to the end of round 1 (its 'round 1/1' log line) and to exit, for
the tiny config (3 clients), through `flwr run` (scripts/flwr_run.sh: SuperLink, Ray, 3 virtual clients)
and in one process (server/in_process.py); and what importing each heavy package costs a fresh process
(every Ray actor, ServerApp and deployment ClientApp pays it). Features are cached by a warm-up run first,
so the figures are start-up, not extraction. Medians of `--repeats` runs, side by side; and the `flwr run`'s
phases, each ending at a log line of the run.

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


def timed(command: list[str], env: dict, markers: tuple[str, ...] = ()) -> tuple[list[float], list[str]]:
    """Seconds until the first line containing each of `markers` is printed (NaN if none is), then seconds
    until exit; and the lines printed. Raises if the command fails."""
    start = time.perf_counter()
    seen = [float("nan")] * len(markers)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        output.append(line)
        for i, marker in enumerate(markers):
            if marker in line and math.isnan(seen[i]):
                seen[i] = time.perf_counter() - start
    if process.wait():
        raise RuntimeError(f"{command} failed:\n{''.join(output[-30:])}")
    return [*seen, time.perf_counter() - start], output


# a `flwr run`'s phases, each ending at the first log line holding the marker
PHASES = (("submitted to the local SuperLink (it started, the app was packed)", "Flower run"),
          ("ServerApp running, config checked (flwr-simulation, Ray, imports)", "run directory"),
          ("data and SKB loaded", "asking"),
          ("every node identified (each Ray actor's first message)", "nodes identified"),
          ("round 0 evaluated", "round 0/1"),
          ("round 1 done", "round 1/1"))


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
    rows: dict[str, list[list[float]]] = {}
    phases: list[list[float]] = []
    for i in range(args.repeats):
        phases.append(timed(["bash", "scripts/flwr_run.sh", f"{config} run-name='flwr-{i}'"], env,
                            tuple(marker for _, marker in PHASES))[0])
        rows.setdefault("`flwr run` (scripts/flwr_run.sh)", []).append([phases[-1][-2], phases[-1][-1]])
        rows.setdefault("in one process (server/in_process.py)", []).append(
            timed(in_process + [f"{config} run-name='local-{i}'"], env, ("round 1/1",))[0])
        for module in IMPORTS:
            rows.setdefault(f"`import {module}` in a fresh process", []).append(
                timed([sys.executable, "-c", f"import {module}"], env, ("never printed",))[0])
    print(f"| what (tiny config, features cached; median of {args.repeats}) | to the end of round 1 | to exit |")
    print("|---|---|---|")
    for name, runs in rows.items():
        first = [r[0] for r in runs if not math.isnan(r[0])]
        print(f"| {name} | {f'{statistics.median(first):.1f} s' if first else ''} | "
              f"{statistics.median(r[1] for r in runs):.1f} s |")
    print(f"\n| `flwr run`, phase (median of {args.repeats}) | ends at | takes |")
    print("|---|---|---|")
    previous = 0.0
    for i, (name, _) in enumerate(PHASES):
        ends = statistics.median(run[i] for run in phases)
        print(f"| {name} | {ends:.1f} s | {ends - previous:.1f} s |")
        previous = ends


if __name__ == "__main__":
    main()
