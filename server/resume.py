"""Resume a retrieval run from its checkpoint: what the checkpoint keeps besides the model, and a
strategy mixin that numbers Flower's rounds (which always start at 1) from where the run stopped."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd
from flwr.app import ArrayRecord, MetricRecord

from semfed import run_directory as rd
from semfed.config import SemfedConfig
from semfed.retrieval import report
from semfed.retrieval.ledger_files import discard_after
from semfed.retrieval.resume import check_same_run, plain, restore_rng, rng_state, table_from_state, table_state
from strategies.keyed_fedavg import KeyedFedAvg

log = logging.getLogger("semfed.server")


class RoundOffset:
    """Mixin for a Flower strategy: round r of Strategy.start is round r + round_offset to the strategy
    (and so to the clients, which get 'server-round' from it)."""

    round_offset = 0

    def configure_train(self, server_round, *args, **kwargs):
        return super().configure_train(server_round + self.round_offset, *args, **kwargs)

    def aggregate_train(self, server_round, *args, **kwargs):
        return super().aggregate_train(server_round + self.round_offset, *args, **kwargs)

    def configure_evaluate(self, server_round, *args, **kwargs):
        return super().configure_evaluate(server_round + self.round_offset, *args, **kwargs)

    def aggregate_evaluate(self, server_round, *args, **kwargs):
        return super().aggregate_evaluate(server_round + self.round_offset, *args, **kwargs)


def resumable(strategy_class: type[KeyedFedAvg]) -> type[KeyedFedAvg]:
    """`strategy_class` with RoundOffset (offset 0 until resume_from sets it)."""
    return type(strategy_class.__name__, (RoundOffset, strategy_class), {})


def resume_state(strategy: KeyedFedAvg, table: pd.DataFrame, client_rsum: dict[int, float]) -> dict:
    """What checkpoint.pt keeps for a resume, as plain containers and tensors (torch.load weights_only):
    the strategy's STATE attributes, RNG states, the metrics table so far, each client's latest RSUM."""
    return {"strategy": {name: plain(getattr(strategy, name)) for name in strategy.STATE},
            "rng": rng_state(), "metrics": table_state(table), "client_rsum": plain(client_rsum)}


def run_name_of(cfg: SemfedConfig, run_dir) -> str:
    """The run directory relative to runs/ (what the clients get as 'run-name')."""
    return run_dir.relative_to(cfg.root / "runs").as_posix()


def resume_from(cfg: SemfedConfig, run_dir, strategy: RoundOffset, recorder) -> tuple[ArrayRecord | None, int]:
    """Restore the run in `run_dir` from its checkpoint into `strategy` and `recorder` (its metrics
    table, rewritten to metrics.csv, and client RSUMs); return the global arrays and the last finished
    round. (None, 0) when the run does not resume or has no checkpoint yet (a fresh start). The clients'
    label ledger files of later rounds (all, on a fresh start) are removed: the clients continue from
    the checkpoint's round."""
    file = run_dir / report.CHECKPOINT
    if not (cfg.resume and file.exists()):
        discard_after(cfg.run_ledgers(run_name_of(cfg, run_dir)), 0)
        return None, 0
    checkpoint = rd.load_checkpoint(file, report.CHECKPOINT_KEYS)
    check_same_run(checkpoint["config"], cfg, file)
    for name, value in checkpoint["strategy"].items():
        setattr(strategy, name, value)
    restore_rng(checkpoint["rng"])
    recorder.table = table_from_state(checkpoint["metrics"])
    recorder.table.to_csv(run_dir / report.METRICS, index=False)  # drops a row written after the checkpoint
    recorder.client_rsum = checkpoint["client_rsum"]
    strategy.round_offset = done = int(checkpoint["round"])
    discard_after(cfg.run_ledgers(run_name_of(cfg, run_dir)), done)
    log.info("resuming %s after round %d of %d", run_dir, done, cfg.num_server_rounds)
    return ArrayRecord({k: v.cpu() for k, v in checkpoint["adapter"].items()}), done


class StoppedAfterRound(RuntimeError):
    """The test-only stop-after-round key ended the run, as a crash would, after a checkpoint."""


def offset_evaluate(evaluate_fn: Callable[[int, ArrayRecord], MetricRecord], done: int, stop_after: int = 0):
    """evaluate_fn on the run's own round numbers; a resumed run skips Strategy.start's round-0 evaluation
    (the model it would evaluate is the checkpoint's, already recorded). Raises StoppedAfterRound after
    round `stop_after` is recorded (0 = never)."""
    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if done and not server_round:
            return None
        metrics = evaluate_fn(server_round + done, arrays)
        if stop_after and server_round + done == stop_after:
            raise StoppedAfterRound(f"stop-after-round: stopped after round {stop_after} (its checkpoint is written)")
        return metrics

    return evaluate
