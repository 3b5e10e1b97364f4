"""Framework overhead: a steady-state round of the default config (10 clients, all training each round) through
the real Flower simulation (scripts/flwr_run.sh: the SuperLink, Ray, 10 virtual SuperNodes), through the
in-process runner (server/in_process.py: the same ServerApp and ClientApp, no SuperLink or Ray), and as a plain
PyTorch loop doing the same work in one process: each client's local training (semfed's train_local on its
shard, the run's seeds), the keyed FedAvg of the updates, and the server's RSUM evaluation on the test split
and each user's own test images. Side by side in one run; the round time is the median of rounds 2..R
(round 1 includes the actors' first message).

Features must be cached in the work dir (a default run made them), or the first run extracts them.

    .venv/bin/python -m benchmarks.overhead [--rounds 4] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def plain_loop(work: Path, rounds: int) -> list[float]:
    """Seconds of each round of the same work as the run, without Flower."""
    import torch

    from semfed.aggregation import keyed_aggregate
    from semfed.config import load_config
    from semfed.data.features import prepare_features
    from semfed.retrieval.evaluation import evaluate_shared_model
    from semfed.retrieval.participants import build_adapter, client_shard, dataset_and_skb, federation_encoders
    from semfed.retrieval.training import train_local
    from semfed.sampling import sample_partitions
    from semfed.seeds import client_round_seed

    cfg = load_config(**{"work-dir": str(work)})
    prepare_features(cfg, dataset_and_skb(cfg)[0])
    encoders = federation_encoders(cfg)
    server_model = build_adapter(cfg, encoders, seed=cfg.seed)
    state = {k: v.detach().numpy().copy() for k, v in server_model.state_dict().items()}
    evaluate_shared_model(server_model, cfg, encoders)  # round 0's evaluation, as the run does
    times = []
    for server_round in range(1, rounds + 1):
        start = time.perf_counter()
        updates = []
        for pid in sample_partitions(cfg.seed, server_round, range(len(cfg.client_profiles)), cfg.fraction_train):
            profile = cfg.client_profiles[pid]
            model = build_adapter(cfg, profile.encoders, seed=0)
            model.load_state_dict({k: torch.from_numpy(state[k]) for k in model.state_dict()})
            shard = client_shard(cfg, pid)
            train_local(model, shard, cfg, profile.local_epochs, client_round_seed(cfg.seed, server_round, pid), "cpu")
            updates.append(({k: v.detach().numpy() for k, v in model.state_dict().items()}, float(len(shard))))
        state = keyed_aggregate(updates, state, cfg.aggregation)
        server_model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        evaluate_shared_model(server_model, cfg, encoders)
        times.append(time.perf_counter() - start)
    return times


def run_seconds(command: list[str], work: Path, name: str, env: dict) -> list[float]:
    """Each round's seconds of a semfed run (its metrics.csv)."""
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{command} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return pd.read_csv(work / "runs" / name / "metrics.csv")["seconds"].tolist()[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--work", type=Path, default=None, help="work dir with the default config's features cached")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="semfed-overhead-"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    env = {**os.environ, "FLWR_HOME": str(Path(tempfile.mkdtemp(prefix="semfed-overhead-flwr-"))),
           "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    config = f"work-dir='{work}' num-server-rounds={args.rounds}"
    rows = {
        "plain PyTorch loop, one process": plain_loop(work, args.rounds),
        "semfed in one process (server/in_process.py)": run_seconds(
            [sys.executable, "-m", "server.in_process", f"{config} run-name='overhead-local-{stamp}'"], work,
            f"overhead-local-{stamp}", env),
        "semfed through `flwr run` (SuperLink, Ray)": run_seconds(
            ["bash", "scripts/flwr_run.sh", f"{config} run-name='overhead-flwr-{stamp}'"], work,
            f"overhead-flwr-{stamp}", env),
    }
    base = statistics.median(next(iter(rows.values()))[1:])
    print(f"\n| what (default config, 10 clients) | each round (s) | steady-state round, median of 2..{args.rounds} "
          "| ratio to the plain loop |")
    print("|---|---|---|---|")
    for name, seconds in rows.items():
        steady = statistics.median(seconds[1:])
        print(f"| {name} | {' / '.join(f'{s:.2f}' for s in seconds)} | {steady:.2f} s | {steady / base:.2f} |")


if __name__ == "__main__":
    main()
