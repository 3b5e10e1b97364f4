"""Centralised upper bound: the same adapter trained on the pooled client shards with the same budget."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from semfed import run_directory as rd
from semfed.config import SemfedConfig
from semfed.data.features import prepare_features
from semfed.retrieval import report
from semfed.retrieval.evaluation import evaluate_shared_model, recall_columns, user_groups
from semfed.retrieval.participants import build_adapter, client_shard, dataset_and_skb, federation_encoders
from semfed.retrieval.training import epoch_batches, train_steps

log = logging.getLogger("semfed.retrieval.centralised")


def train_centralised(cfg: SemfedConfig) -> Path:
    """One model, one Adam, and every round the mini-batches of every client's shard (through
    its own encoders, for its local epochs) pooled and shuffled: the same sample visits as
    the federation, without averaging. Writes a run directory like the federated run's."""
    run_dir = rd.create_run_dir(cfg)
    handlers = rd.attach_log(run_dir)
    try:
        scenes, skb = dataset_and_skb(cfg)
        prepare_features(cfg, scenes)
        encoders = federation_encoders(cfg)
        device = cfg.torch_device
        model = build_adapter(cfg, encoders, seed=cfg.seed).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
        generator = torch.Generator().manual_seed(cfg.seed)
        table = None
        for server_round in range(cfg.num_server_rounds + 1):
            start = time.perf_counter()
            loss = float("nan")
            if server_round > 0:
                steps = []
                for pid, profile in enumerate(cfg.client_profiles):
                    shard = client_shard(cfg, pid)
                    batches = epoch_batches(len(shard), profile.local_epochs, cfg.batch_size, generator)
                    steps += [(shard, idx, caption, None) for idx, caption in batches]
                order = torch.randperm(len(steps), generator=generator).tolist()
                stats = train_steps(model, [steps[i] for i in order], cfg, device, optimizer)
                loss = stats["loss_sum"] / stats["steps"]
            per_pair, client_rsum = evaluate_shared_model(model, cfg, encoders)
            row = {"round": server_round, **recall_columns(per_pair, client_rsum, cfg), "train_loss": loss,
                   "seconds": round(time.perf_counter() - start, 2)}
            table = report.append_metrics(run_dir, table, row)
            log.info("centralised round %d/%d  RSUM %.1f", server_round, cfg.num_server_rounds, row["rsum"])
        report.plot_rsum(run_dir, table, f"centralised upper bound, seed {cfg.seed}")
        report.plot_users(run_dir, table, user_groups(cfg), f"centralised upper bound: each user, seed {cfg.seed}")
        report.save_checkpoint(run_dir, model.state_dict(), cfg.num_server_rounds, skb.version, cfg)
        report.write_groups(run_dir, cfg, client_rsum)
        return run_dir
    finally:
        rd.detach_log(handlers)
