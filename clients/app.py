"""ClientApp: one user's side of the run's task (semfed.tasks): retrieval (clients/retrieval.py) or
seed 001's D-JSCC (clients/jscc.py), its training and its client-side evaluation; and the node's identity for
the server's handshake."""

from __future__ import annotations

import functools

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients.partition import played_partition
from semfed import protocol
from semfed.config import SemfedConfig
from semfed.fault_injection import failing_clients, inject_failure
from semfed.tasks import load

app = ClientApp()


@functools.lru_cache(maxsize=4)
def run_config(items: frozenset) -> SemfedConfig:
    """The run's config, validated once per process (the run config is the same in every message)."""
    return SemfedConfig.from_run_config(dict(items))


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train this client's part of the task's model and reply with it."""
    cfg = run_config(frozenset(context.run_config.items()))
    server_round, partition_id = int(msg.content[protocol.CONFIG][protocol.SERVER_ROUND]), played_partition(msg, context)
    if partition_id in failing_clients(cfg.seed, server_round, len(cfg.client_profiles), cfg.fail_fraction):
        inject_failure(cfg.fail_mode, server_round, partition_id, cfg.round_timeout_s)  # test-only (fail-fraction)
    return load(cfg.job.client)(msg, context, cfg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The task's client-side evaluation (retrieval: a user's personalisation after the last round)."""
    cfg = run_config(frozenset(context.run_config.items()))
    if not cfg.job.client_evaluate:
        raise ValueError(f"task {cfg.task!r} sends no EVALUATE messages")
    return load(cfg.job.client_evaluate)(msg, context, cfg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Identify this node: reply its partition-id (the server maps Flower node ids to users with it)."""
    return Message(RecordDict({protocol.METRICS: MetricRecord({protocol.PARTITION_ID: int(context.node_config[protocol.PARTITION_ID])})}),
                   reply_to=msg)
