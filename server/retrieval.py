"""The retrieval run (task = retrieval, seed 000): prepares data and features once, federates the adapter
with the method's strategy, evaluates and records every round."""

from __future__ import annotations

import copy
import logging
import time

import pandas as pd
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord
from flwr.serverapp import Grid

from semfed import protocol
from semfed import run_directory as rd
from semfed.compression import compress_update
from semfed.config import SemfedConfig
from semfed.data.features import prepare_features
from semfed.retrieval import report
from semfed.retrieval.centralised import train_centralised
from semfed.retrieval.evaluation import evaluate_clients, evaluate_shared_model, recall_columns, user_groups
from semfed.retrieval.labels import group_label_metrics
from semfed.retrieval.participants import (build_adapter, client_annotations, dataset_and_skb, federation_encoders,
                                           shard_sizes)
from semfed.tracking import Tracking
from server.nodes import discover_partitions
from server.resume import offset_evaluate, resumable, resume_from, resume_state, run_name_of
from strategies.keyed_fedavg import KeyedFedAvg, judged_options, record_nbytes
from strategies.label_consensus import LabelConsensusFedAvg
from strategies.local_only import LocalOnly
from strategies.personal_evaluation import personalised

log = logging.getLogger("semfed.server")
ROUND_COUNTS = ("clients_replied", "clients_failed", "updates_rejected", "skipped")  # metrics.csv, per round
NETWORK_COLUMNS = ("clients_late", "sim_round_s", "energy_j")  # metrics.csv, per round, with the simulated network
CHURN_COLUMNS = ("users_online", "users_joined", "users_left")  # metrics.csv, per round, with churn
AUCTION_COLUMNS = ("auction_price", "auction_value")  # metrics.csv, per round, with scheduling='auction'



class RoundRecorder:
    """Server-side evaluate_fn: RSUM on the test split and each user's on its own test images, one metrics
    row, plot and checkpoint per round.
    Local-only runs evaluate every client's own model on the pairs it uses (strategy.client_arrays)."""

    def __init__(self, cfg: SemfedConfig, run_dir, strategy: KeyedFedAvg, skb_version: str, tracking: Tracking):
        self.cfg, self.run_dir, self.strategy, self.skb_version = cfg, run_dir, strategy, skb_version
        self.tracking = tracking
        self.encoders = federation_encoders(cfg)
        self.model = build_adapter(cfg, self.encoders, seed=cfg.seed).to(cfg.torch_device)
        self.last_time = time.perf_counter()
        self.client_rsum: dict[int, float] = {}
        self.table = None

    def evaluate(self, state: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
        """Recalls per encoder pair of the global model `state`; sets each client's RSUM."""
        self.model.load_state_dict(state)
        if not isinstance(self.strategy, LocalOnly):
            per_pair, self.client_rsum = evaluate_shared_model(self.model, self.cfg, self.encoders)
            return per_pair
        models = {}
        for pid in range(len(self.cfg.client_profiles)):
            model = copy.deepcopy(self.model)
            own = self.strategy.client_arrays.get(pid)
            if own is not None:
                model.load_state_dict(own.to_torch_state_dict(), strict=False)
            models[pid] = model
        per_pair, self.client_rsum = evaluate_clients(models, self.cfg, self.encoders)
        return per_pair

    def __call__(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        stats = self.strategy.round_stats.get(server_round, {})
        now = time.perf_counter()
        scored = server_round % self.cfg.eval_every == 0 or server_round == self.cfg.num_server_rounds
        state = arrays.to_torch_state_dict()  # the round's global model, checkpointed whether scored or not
        recalls = recall_columns(self.evaluate(state), self.client_rsum, self.cfg) if scored else {"rsum": float("nan")}
        row = {"round": server_round, **recalls,
               "train_loss": stats.get("train_loss", float("nan")),
               "bytes_sent": stats.get("bytes_sent", 0), "bytes_received": stats.get("bytes_received", 0),
               **{k: stats.get(k, 0) for k in ROUND_COUNTS}}
        if self.cfg.label_noise or self.cfg.label_policy.scores:
            row.update(self.label_columns(server_round))
        if self.cfg.churn_model is not None:
            row.update({k: stats.get(k, 0) for k in CHURN_COLUMNS})
        if self.strategy.scheduler.auction:
            row.update({k: stats.get(k, float("nan")) for k in AUCTION_COLUMNS})
        if self.strategy.network is not None:
            row.update({k: stats.get(k, 0) for k in NETWORK_COLUMNS})
            if self.strategy.network.keeps_late:
                row["updates_stale"] = stats.get("updates_stale", 0)
            row["sim_clock_s"] = row["sim_round_s"] + (0.0 if self.table is None else self.table["sim_clock_s"].iloc[-1])
            report.write_network(self.run_dir, self.strategy.network_log)
        row["seconds"] = round(now - self.last_time, 2)
        self.last_time = now
        self.table = table = report.append_metrics(self.run_dir, self.table, row)
        self.tracking.log(row)
        report.plot_rsum(self.run_dir, table, f"semfed {self.cfg.method}: {len(self.cfg.client_profiles)} clients, "
                                              f"seed {self.cfg.seed}")
        if scored:
            report.plot_users(self.run_dir, table, user_groups(self.cfg), f"semfed {self.cfg.method}: each user, "
                                                                         f"seed {self.cfg.seed}")
        report.save_checkpoint(self.run_dir, state, server_round, self.skb_version, self.cfg,
                               resume_state(self.strategy, table, self.client_rsum))
        log.info("round %d/%d  RSUM %.1f (best %.1f)  train loss %s  %.1f s", server_round,
                 self.cfg.num_server_rounds, row["rsum"], table["rsum"].max(), f"{row['train_loss']:.3f}",
                 row["seconds"])
        if "pruned[all]" in row:
            scores = (f" (precision {row['precision[all]']:.2f}, recall {row['recall[all]']:.2f} against the injected "
                      "noise)" if "precision[all]" in row else "")
            log.info("labels: excluded %d, pruned %d, taken back %d%s", row["excluded[all]"], row["pruned[all]"],
                     row["reinstated[all]"], scores)
        # to Flower (which logs it each round) the summary only: each user's RSUM is in metrics.csv and users.png
        return MetricRecord({k: float(v) for k, v in row.items() if not k.startswith("user_rsum[")})

    def label_columns(self, server_round: int) -> dict[str, float]:
        """Per label-noise group: label counts, pruning P/R/F1 (label-diagnostics on), and the consensus null's mean and std."""
        diagnostics = self.strategy.client_diagnostics.get(server_round, {}) if self.cfg.label_diagnostics else None
        row = group_label_metrics(self.cfg.label_groups(), self.strategy.client_metrics.get(server_round, {}),
                                  diagnostics)
        consensus = getattr(self.strategy, "consensus_history", {}).get(server_round)
        if consensus is not None:
            row["null_mean"], row["null_std"] = consensus
        return row


def strategy_class(cfg: SemfedConfig) -> type[KeyedFedAvg]:
    """A method that does not aggregate: LocalOnly; one that does: keyed FedAvg (robust rules included),
    with the label consensus when the label policy uses it and the users' personalisation after the last
    round when personal-finetune-epochs > 0."""
    if not cfg.training_method.aggregates:
        return LocalOnly
    aggregating = LabelConsensusFedAvg if cfg.label_policy.uses_consensus else KeyedFedAvg
    return personalised(aggregating) if cfg.personal_finetune_epochs else aggregating


def upload_bytes(cfg: SemfedConfig) -> dict[int, int]:
    """Partition id -> bytes of the update it sends (the arrays of its own encoders' model, as serialised;
    compressed, the payload's, whose size does not depend on the values)."""
    sizes = {}
    for pid, profile in enumerate(cfg.client_profiles):
        if profile.encoders not in sizes:
            state = {k: v.detach().numpy() for k, v in build_adapter(cfg, profile.encoders, seed=0).state_dict().items()}
            if cfg.compression.active:
                state, _ = compress_update(state, state, {}, cfg.compression, error_feedback=False)
            sizes[profile.encoders] = record_nbytes(ArrayRecord({k: Array(v) for k, v in state.items()}))
    return {pid: sizes[profile.encoders] for pid, profile in enumerate(cfg.client_profiles)}


def write_noise_record(cfg: SemfedConfig, scenes, run_dir) -> int:
    """label_noise.csv: every corrupted label (client, group, shard row, image, whose annotation it carries)."""
    group_of = {c: g.name for g in cfg.noise_groups for c in g.clients}
    rows = []
    for pid in range(len(cfg.client_profiles)):
        indices, annotations = client_annotations(cfg, scenes, pid)
        rows += [{"partition-id": pid, "group": group_of.get(pid, "clean"), "row": r, "image": int(indices[r]),
                  "annotation_of": int(annotations[r])} for r in (indices != annotations).nonzero()[0]]
    columns = ["partition-id", "group", "row", "image", "annotation_of"]
    pd.DataFrame(rows, columns=columns).to_csv(run_dir / "label_noise.csv", index=False)
    return len(rows)


def run_retrieval(grid: Grid, cfg: SemfedConfig) -> None:
    """The retrieval run: the method's strategy over the clients' nodes, or for a pooled method (the
    centralised bound) one model trained here while the nodes stay idle."""
    if cfg.training_method.pooled:
        log.info("%s run done: %s", cfg.method, train_centralised(cfg))
        return
    run_dir = rd.create_run_dir(cfg)
    handlers = rd.attach_log(run_dir)
    tracking = Tracking(cfg.tracking_sinks, run_dir, run_name_of(cfg, run_dir), cfg.to_run_config(), cfg.root,
                        cfg.resume)
    try:
        log.info("run directory %s", run_dir)
        scenes, skb = dataset_and_skb(cfg)
        prepare_features(cfg, scenes)
        if cfg.label_noise:
            log.info("label noise (%s): %d corrupted labels recorded in label_noise.csv", cfg.label_noise,
                     write_noise_record(cfg, scenes, run_dir))
        if cfg.supernode_pool:  # a pool of SuperNodes plays each round's sampled users
            nodes = discover_partitions(grid, cfg.supernode_pool, cfg.round_timeout_s, "supernode-pool", "SuperNodes")
        else:
            nodes = discover_partitions(grid, len(cfg.client_profiles), cfg.round_timeout_s)
        # clients drawn from the seed by partition id; a node that disappears costs its update, not the run
        shards = shard_sizes(cfg)
        sampling = dict(nodes=nodes, pooled_users=len(cfg.client_profiles) if cfg.supernode_pool else 0,
                        fraction_train=cfg.fraction_train, fraction_evaluate=0.0,
                        min_train_nodes=cfg.min_replies, min_replies=cfg.min_replies, **judged_options(cfg, shards),
                        network=cfg.network({pid: n * cfg.client_profiles[pid].local_epochs for pid, n in shards.items()}),
                        upload_bytes=upload_bytes(cfg) if cfg.client_devices else {})
        strategy = resumable(strategy_class(cfg))(**sampling)
        if cfg.personal_finetune_epochs:
            strategy.personal_round = cfg.num_server_rounds  # the users personalise after the last round
        recorder = RoundRecorder(cfg, run_dir, strategy, skb.version, tracking)
        initial, done = resume_from(cfg, run_dir, strategy, recorder)
        if initial is None:
            initial = ArrayRecord({k: v.cpu() for k, v in recorder.model.state_dict().items()})
        if done >= cfg.num_server_rounds:
            log.info("run already finished all %d rounds: only its final tables are written", cfg.num_server_rounds)
        else:  # 'run-name' (resolved): the clients keep their label ledgers in this run directory
            train_config = ConfigRecord({protocol.SKB_VERSION: skb.version,
                                         protocol.RUN_NAME: run_name_of(cfg, run_dir)})
            strategy.start(grid=grid, initial_arrays=initial, num_rounds=cfg.num_server_rounds - done,
                           timeout=cfg.round_timeout_s, train_config=train_config, evaluate_config=train_config,
                           evaluate_fn=offset_evaluate(recorder, done, cfg.stop_after_round))
        groups = report.write_groups(run_dir, cfg, recorder.client_rsum)
        log.info("final RSUM per client group:\n%s", groups.to_string(index=False))
        if cfg.personal_finetune_epochs:
            personal = report.write_personal(run_dir, cfg, strategy.personal, user_groups(cfg))
            log.info("personalisation (%d epochs), own-test RSUM per user:\n%s", cfg.personal_finetune_epochs,
                     personal.to_string(index=False))
        if strategy.network is not None:
            users = report.write_network_users(run_dir, strategy.network, strategy.network_log, recorder.client_rsum)
            report.plot_network(run_dir, recorder.table, users, f"semfed {cfg.method}: simulated network, seed {cfg.seed}")
            log.info("simulated network, per user:\n%s", users.to_string(index=False))
        log.info("done: %s", run_dir)
    finally:
        tracking.close()
        rd.detach_log(handlers)
