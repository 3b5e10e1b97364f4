"""Scale: 10 clients sampled per round out of N in total (100, 1,000, 10,000, 100,000), every client holding
two training scenes of its own (scenes-train = 2N, iid; the test split fixed at 1,000 scenes), through
`flwr run` (scripts/flwr_run.sh: the SuperLink, Ray, N virtual SuperNodes). Per N: seconds per round
(metrics.csv; round 1 is the actors' first message, so the steady state is the median of the later rounds),
seconds from the command to the end of round 1 (the SuperLink, Ray, and the server asking every node for its
partition id), and the peak resident memory of the whole process tree (sampled every 0.5 s; pages of the
memory-mapped features that several processes share are counted in each).

The clients use the oracle encoders (the scenes' ground truth as features), so the data is prepared in a
few seconds and the figures are the federation's, not feature extraction's; the scenes and features are
prepared in a separate process before the timed run.

--runner in-process runs the same ServerApp and ClientApp in one process (server/in_process.py): the
federation without Flower's simulation engine. --pool P runs the clients on P SuperNodes that play each round's
sampled clients (supernode-pool; P >= 10), instead of one SuperNode per client.

    .venv/bin/python -m benchmarks.scale [--totals 100 1000 10000 100000] [--rounds 4] [--runner flwr|in-process]
        [--pool P] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

from experiments.sweep import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
SAMPLED = 10
SCENES_PER_CLIENT = 2
TEST_SCENES = 1000


def run_config(work: Path, name: str, total: int, rounds: int, pool: int = 0) -> str:
    """The run config of one point: `total` clients, SAMPLED of them training per round (on a pool of `pool`
    SuperNodes when > 0)."""
    return (f"work-dir='{work}' run-name='{name}' num-server-rounds={rounds} partitioning='iid' "
            f"scenes-train={SCENES_PER_CLIENT * total} scenes-val=4 scenes-test={TEST_SCENES} batch-size=2 "
            f"clients='{total}x oracle-image+oracle-text' fraction-train={SAMPLED / total!r} supernode-pool={pool}")


PREPARE = """
import sys
from flwr.common.config import parse_config_args
from semfed.config import from_overrides
from semfed.data.features import prepare_features
from semfed.retrieval.participants import dataset_and_skb
cfg = from_overrides(parse_config_args([sys.argv[1]]))
scenes, _ = dataset_and_skb(cfg)
prepare_features(cfg, scenes)
"""


class PeakMemory(threading.Thread):
    """The largest sum of resident set sizes over a process and all its descendants, sampled every 0.5 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for process in tree:
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)




def measure(work: Path, total: int, rounds: int, env: dict, runner: str, pool: int = 0) -> dict:
    """One point: prepare its data, then time its run (`runner`) and watch its memory."""
    name = f"scale-{runner}-{total}-{time.strftime('%Y%m%d-%H%M%S')}"
    config = run_config(work, name, total, rounds, pool)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", PREPARE, config], cwd=ROOT, env=env, check=True, capture_output=True)
    prepared = time.perf_counter() - start
    start = time.perf_counter()
    process = subprocess.Popen(COMMANDS[runner](config, ""), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    memory = PeakMemory(process.pid)
    memory.start()
    round_one, output = float("nan"), []
    for line in process.stdout:
        output.append(line)
        if f"round 1/{rounds}" in line and round_one != round_one:
            round_one = time.perf_counter() - start
    code = process.wait()
    wall = time.perf_counter() - start
    memory.done.set()
    memory.join()
    if code:
        raise RuntimeError(f"N={total} failed:\n{''.join(output[-40:])}")
    seconds = pd.read_csv(work / "runs" / name / "metrics.csv")["seconds"].tolist()[1:]
    return {"total": total, "prepare_s": prepared, "round_one_s": round_one, "first_round_s": seconds[0],
            "round_s": statistics.median(seconds[1:]), "rounds_s": seconds, "wall_s": wall,
            "peak_gb": memory.peak / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--totals", type=int, nargs="+", default=[100, 1000, 10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runner", choices=sorted(COMMANDS), default="flwr",
                        help="flwr: scripts/flwr_run.sh (SuperLink, Ray); in-process: server/in_process.py")
    parser.add_argument("--work", type=Path, default=None, help="work dir (scenes and features are cached there)")
    parser.add_argument("--pool", type=int, default=0, help="supernode-pool: P SuperNodes play the sampled clients "
                        "(0: one SuperNode per client)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="semfed-scale-"))
    env = {**os.environ, "FLWR_HOME": str(work / "flwr-home"), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    rows = []
    for total in args.totals:
        rows.append(measure(work, total, args.rounds, env, args.runner, args.pool))
        row = rows[-1]
        print(f"N={total}: rounds {row['rounds_s']} s, to the end of round 1 {row['round_one_s']:.1f} s, "
              f"peak {row['peak_gb']:.2f} GB, data prepared in {row['prepare_s']:.0f} s", flush=True)
    base = rows[0]["round_s"]
    print(f"\n{args.runner}{f', a pool of {args.pool} SuperNodes' if args.pool else ''}:\n| clients in total | seconds per round (median of rounds 2-{args.rounds}) | ratio to N={rows[0]['total']} "
          "| round 1 | command to the end of round 1 | peak resident memory, whole tree |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['total']:,} | {row['round_s']:.2f} s | {row['round_s'] / base:.2f}x | {row['first_round_s']:.2f} s "
              f"| {row['round_one_s']:.0f} s | {row['peak_gb']:.1f} GB |")


if __name__ == "__main__":
    main()
