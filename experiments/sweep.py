"""Run a sweep file: every point through the real Flower simulation (scripts/flwr_run.sh), skipping
points already finished, then collect one table and the comparison plots.

    .venv/bin/python -m experiments.sweep experiments/sweeps/case_study.toml [--work-dir DIR]
        [--set "key=value ..."] [--name NAME] [--runner flwr|in-process] [--only TEXT] [--collect-only]
        [--output results.csv|results.parquet]

A point's run lives in <work-dir>/runs/<sweep>/<point>/ and its console log in
<work-dir>/sweeps/<sweep>/logs/<point>.log. A point counts as finished when its run holds the
point's config, every round (or it stopped at a D-JSCC plateau) and its final table (experiments/run_state.py); a run interrupted
half-way is kept, renamed <point>.interrupted-<k>, and the point runs again. Retrieval sweeps
give a long table, plots and a summary (sweep_results.py); D-JSCC sweeps (task='jscc') the
framework table with the paper's ordering checked per cell (jscc_results.py): each task's
`sweep_report` (semfed.tasks).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
import pandas as pd
from flwr.common.config import parse_config_args
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parent.parent

from experiments.run_state import TIMES, is_finished, set_aside
from experiments.sweep_grid import Point, Sweep, load_sweep, run_config_text
from semfed.config import ConfigError, default_run_config, from_overrides
from semfed.tasks import TASKS, load

console = Console()
ROUND_LINE = re.compile(r"semfed\.server: round (\d+)/(\d+)")  # the ServerApp's per-round log line (both tasks)


def _stream(command: list[str], log: Path, on_line: Callable[[str], None]) -> bool:
    """Run `command` from the checkout, its output to `log` and `on_line`; True when it exits 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # every process of the run imports this checkout's code
    with open(log, "w") as out, subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT, text=True) as process:
        try:
            for line in process.stdout:
                out.write(line)
                out.flush()
                on_line(line)
        except BaseException:  # interrupted: flwr_run.sh stops the Flower run and its SuperLink on TERM
            process.terminate()
            process.wait()
            raise
    return process.returncode == 0


COMMANDS = {  # --runner: the command that runs one run config (Flower's --run-config text) with a federation config
    "flwr": lambda config, federation: ["bash", str(ROOT / "scripts/flwr_run.sh"), config, federation],  # SuperLink, Ray
    "in-process": lambda config, federation: [sys.executable, "-m", "server.in_process", config],  # the same apps, one process
}


def command_point(runner: str) -> Callable[[Sweep, Point, Path, Path, Callable[[str], None]], bool]:
    """A run_sweep point runner: the point's run through COMMANDS[runner], its output to `log`. The in-process
    runner saves the SuperLink and Ray start-up (about 40 s a point here); float sums may round differently."""
    def run_point(sweep: Sweep, point: Point, work_dir: Path, log: Path, on_line: Callable[[str], None]) -> bool:
        overrides = {**point.overrides, "work-dir": str(work_dir), "run-name": f"{sweep.name}/{point.name}"}
        return _stream(COMMANDS[runner](run_config_text(overrides), sweep.federation), log, on_line)

    run_point.__name__ = runner
    return run_point


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children (and those they waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def record_time(path: Path, point: str, runner: str, wall_seconds: float, cpu_seconds: float, ok: bool) -> None:
    """Append one point's run to the sweep's times table (a point run again gets a second row)."""
    row = pd.DataFrame([{"point": point, "runner": runner, "wall_seconds": round(wall_seconds, 1),
                         "cpu_seconds": round(cpu_seconds, 1), "finished": ok}])
    row.to_csv(path, mode="a", header=not path.exists(), index=False)


def run_sweep(sweep: Sweep, work_dir: Path, run_point=command_point("flwr"), only: str = "") -> list[str]:
    """Run every unfinished point whose name contains `only` in order with a progress display, each point's
    wall and CPU seconds appended to <work-dir>/sweeps/<sweep>/times.csv. Returns the points that failed."""
    runs, logs = work_dir / "runs" / sweep.name, work_dir / "sweeps" / sweep.name / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    failed = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        points = [point for point in sweep.points if only in point.name]
        overall = progress.add_task(f"sweep {sweep.name}", total=len(points))
        for point in points:
            run_dir = runs / point.name
            if is_finished(run_dir, point):
                progress.advance(overall)
                continue
            if run_dir.exists():
                progress.console.print(f"{point.name}: unfinished run kept as {set_aside(run_dir).name}")
            rounds = point.overrides.get("num-server-rounds") or 0
            current = progress.add_task(f"  {point.name}", total=rounds or None)

            def on_line(line: str, task=current) -> None:
                if match := ROUND_LINE.search(line):
                    progress.update(task, completed=int(match[1]), total=int(match[2]))

            wall, cpu = time.perf_counter(), _children_cpu_seconds()
            ok = run_point(sweep, point, work_dir, logs / f"{point.name}.log", on_line)
            record_time(work_dir / "sweeps" / sweep.name / TIMES, point.name, run_point.__name__,
                        time.perf_counter() - wall, _children_cpu_seconds() - cpu, ok)
            progress.remove_task(current)
            if not (ok and is_finished(run_dir, point)):
                failed.append(point.name)
                progress.console.print(f"[red]{point.name} failed[/red]: see {logs / point.name}.log")
            progress.advance(overall)
    return failed


def check_machine(sweep: Sweep, work_dir: Path) -> None:
    """Every point's machine checks (work-dir writable, a GPU for device='cuda', D-JSCC crops that fit),
    before the first run: ValueError with scripts/check_config.py's message, naming the point."""
    for point in sweep.points:
        try:
            from_overrides({**point.overrides, "work-dir": str(work_dir)}).check_environment()
        except ConfigError as error:
            raise ValueError(f"point {point.name}: {error}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "work")
    parser.add_argument("--set", default="", help="run-config overrides added to the file's [base], e.g. "
                        "\"dataset='flickr30k' flickr30k-layout='scan' flickr30k-path='/data/f30k'\"")
    parser.add_argument("--name", help="sweep name (folder under runs/), instead of the file's")
    parser.add_argument("--runner", choices=COMMANDS, default="flwr", help="flwr: each point through `flwr run` "
                        "(SuperLink, Ray); in-process: each point in one Python process (server/in_process.py)")
    parser.add_argument("--collect-only", action="store_true", help="only collect the finished points")
    parser.add_argument("--only", default="", help="run only the points whose name contains this text (e.g. "
                        "'jscc-channel=awgn'), to share a sweep out between processes or machines; every "
                        "finished point is collected")
    parser.add_argument("--output", default="results.csv", help="table file name (.csv or .parquet)")
    args = parser.parse_args()
    work_dir = args.work_dir.resolve()
    try:
        sweep = load_sweep(args.sweep, parse_config_args([args.set]) if args.set else None, args.name)
        if not args.collect_only:
            check_machine(sweep, work_dir)
    except (ValueError, click.ClickException) as error:
        message = error.message if isinstance(error, click.ClickException) else str(error)
        return console.print(f"[red]{message}[/red]", soft_wrap=True) or 2
    failed = [] if args.collect_only else run_sweep(sweep, work_dir, command_point(args.runner), args.only)
    out = work_dir / "sweeps" / sweep.name
    out.mkdir(parents=True, exist_ok=True)
    runs = work_dir / "runs" / sweep.name
    task = TASKS[sweep.points[0].overrides.get("task", default_run_config()["task"])]
    table, text = load(task.sweep_report)(sweep, runs, out)
    if table.empty:
        console.print("no finished points yet")
        return 1
    target = out / args.output
    table.to_parquet(target, index=False) if target.suffix == ".parquet" else table.to_csv(target, index=False)
    (out / "summary.md").write_text(text)
    console.print(text, soft_wrap=True)
    console.print(f"table {target}, summary.md and plots in {out}")
    if failed:
        console.print(f"[red]{len(failed)} point(s) failed: {', '.join(failed)}[/red]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
