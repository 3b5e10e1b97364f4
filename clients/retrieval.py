"""ClientApp side of retrieval (task = retrieval): one user trains the global adapter on its shard through
its own frozen encoders, with its label policy (semfed.label_policies)."""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict

from clients.partition import played_partition
from semfed import protocol
from semfed.compression import compress_update
from semfed.config import SemfedConfig
from semfed.fault_injection import poison_metrics, poison_statistics, poison_update
from semfed.retrieval.evaluation import client_encoders, encoder_embeddings, user_rsum
from semfed.retrieval.labels import close_label_round, noise_overlap
from semfed.retrieval.ledger_files import ledger_folder, load_ledger, save_ledger
from semfed.retrieval.participants import build_adapter, client_shard, dataset_and_skb, federation_encoders
from semfed.retrieval.training import train_local
from semfed.seeds import client_round_seed


def train(msg: Message, context: Context, cfg: SemfedConfig) -> Message:
    """Load the global arrays this client holds keys for, train locally, reply with them
    (plus its label statistics under 'label-stats' when labelling is federated, and with
    label-diagnostics on, its labels' overlap with the injected noise under 'label-diagnostics')."""
    server_round, partition_id = int(msg.content[protocol.CONFIG][protocol.SERVER_ROUND]), played_partition(msg, context)
    profiles = cfg.client_profiles
    if partition_id >= len(profiles):
        raise ValueError(f"partition-id {partition_id} has no client profile: 'clients' lists {len(profiles)}")
    profile = profiles[partition_id]
    config = msg.content["config"]
    _, skb = dataset_and_skb(cfg)
    if config[protocol.SKB_VERSION] != skb.version:
        raise ValueError(f"SKB mismatch: server has {config['skb-version']}, this client {skb.version}")

    model = build_adapter(cfg, profile.encoders, seed=0)
    global_state = msg.content["arrays"].to_torch_state_dict()
    model.load_state_dict({key: global_state[key] for key in model.state_dict()})
    device = cfg.torch_device
    model.to(device)
    shard = client_shard(cfg, partition_id)
    policy = cfg.label_policy
    scoring = policy.scores and server_round > cfg.label_warmup_rounds
    keeps_ledger = scoring and policy.keeps_ledger
    ledger = loaded_round = None
    if keeps_ledger:  # kept in the run directory (retrieval.ledger_files), so that a resumed run continues with it
        folder = ledger_folder(cfg.run_ledgers(str(config[protocol.RUN_NAME])), partition_id)
        ledger, loaded_round = load_ledger(folder, server_round, len(shard))
    budget = config.get(protocol.MAX_EXAMPLES)  # the examples that fit before the simulated deadline
    local = train_local(model, shard, cfg, profile.local_epochs, client_round_seed(cfg.seed, server_round, partition_id), device,
                        score_labels=scoring, pruned=None if ledger is None else torch.as_tensor(ledger.pruned),
                        max_examples=None if budget is None else int(budget))

    metrics = {"train_loss": local.train_loss, "steps": local.steps,
               "num-examples": len(shard) if budget is None else min(len(shard), int(budget)),
               protocol.PARTITION_ID: partition_id}
    diagnostics = noise_overlap(shard.noisy)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    poisoned = cfg.poison_kind_in(server_round) if partition_id in cfg.poisoned_clients else None  # test-only (poison-clients)
    if poisoned:
        state, metrics = poison_update(state, poisoned), poison_metrics(metrics, poisoned, len(profiles))
    arrays = compressed(state, global_state, context, cfg) if cfg.compression.active else ArrayRecord(state)
    if poisoned == "bytes":  # the first array's data replaced by bytes that are no .npy file
        first = next(iter(arrays))
        arrays[first] = Array(dtype=arrays[first].dtype, shape=arrays[first].shape, stype=arrays[first].stype,
                              data=b"\x00garbage, not an npy file")
    content = RecordDict({"arrays": arrays})
    if scoring:
        consensus = config.get(protocol.LABEL_CONSENSUS)
        report = close_label_round(ledger, local.confidence, local.decoy_confidence, local.excluded, policy,
                                   None if consensus is None else np.asarray(consensus, dtype=np.float64),
                                   cfg.label_prune_precision, cfg.label_prune_rounds)
        metrics.update({f"label-{k}": v for k, v in report.counts.items()})
        diagnostics = noise_overlap(shard.noisy, local.excluded, report.pruned)
        if ledger is not None:
            save_ledger(folder, server_round, ledger, keep=loaded_round)
        if policy.uses_consensus:
            statistics = poison_statistics(report.statistics, poisoned) if poisoned else report.statistics
            content[protocol.LABEL_STATS] = ArrayRecord({k: Array(v) for k, v in statistics.items()})
    content["metrics"] = MetricRecord(metrics)
    if cfg.label_diagnostics:  # simulation only; the strategy keeps it out of the averaged metrics and the bytes
        content[protocol.LABEL_DIAGNOSTICS] = MetricRecord(diagnostics)
    return Message(content, reply_to=msg)


RESIDUAL = "compression-residual"  # context.state: what this user meant to send but did not (error feedback)


def compressed(state: dict[str, torch.Tensor], received: dict[str, torch.Tensor], context: Context,
               cfg: SemfedConfig) -> ArrayRecord:
    """The update as semfed.compression's payload against the global arrays `received`; the error-feedback
    residual is kept in the node's context.state between rounds (it never leaves the node)."""
    residual = context.state.get(RESIDUAL)
    payload, carried = compress_update({k: v.numpy() for k, v in state.items()},
                                       {k: received[k].numpy() for k in state},
                                       {} if residual is None else {k: a.numpy() for k, a in residual.items()},
                                       cfg.compression, cfg.error_feedback)
    if cfg.error_feedback:
        context.state[RESIDUAL] = ArrayRecord({k: Array(v) for k, v in carried.items()})
    return ArrayRecord({k: Array(v) for k, v in payload.items()})


def personalise(msg: Message, context: Context, cfg: SemfedConfig) -> Message:
    """This user's own-test RSUM (semfed.retrieval.evaluation.user_rsum) with the global adapter it is sent,
    and with a personal copy fine-tuned on its own shard for personal-finetune-epochs, leaving out the
    labels its ledger pruned. The copy never leaves the client: the reply holds the two RSUMs only. The
    modality a single-modality user lacks is embedded with the global adapter (the federation's encoders)."""
    server_round, partition_id = int(msg.content[protocol.CONFIG][protocol.SERVER_ROUND]), int(context.node_config[protocol.PARTITION_ID])
    profile = cfg.client_profiles[partition_id]
    global_state = msg.content["arrays"].to_torch_state_dict()
    everyone = federation_encoders(cfg)
    shared = build_adapter(cfg, everyone, seed=0)
    shared.load_state_dict({key: global_state[key] for key in shared.state_dict()})
    embeddings = encoder_embeddings(shared.to(cfg.torch_device), cfg, client_encoders(profile, everyone))
    rsum_global = user_rsum(embeddings, cfg, partition_id)

    personal = build_adapter(cfg, profile.encoders, seed=0)
    personal.load_state_dict({key: global_state[key] for key in personal.state_dict()})
    personal.to(cfg.torch_device)
    pruned = None
    if cfg.label_policy.keeps_ledger:
        folder = ledger_folder(cfg.run_ledgers(str(msg.content[protocol.CONFIG][protocol.RUN_NAME])), partition_id)
        ledger, _ = load_ledger(folder, server_round + 1, len(client_shard(cfg, partition_id)))
        pruned = torch.as_tensor(ledger.pruned)
    train_local(personal, client_shard(cfg, partition_id), cfg, cfg.personal_finetune_epochs,
                client_round_seed(cfg.seed, server_round + 1, partition_id), cfg.torch_device, pruned=pruned)
    embeddings.update(encoder_embeddings(personal, cfg, profile.encoders))
    metrics = {protocol.PARTITION_ID: partition_id, protocol.RSUM_GLOBAL: rsum_global,
               protocol.RSUM_PERSONAL: user_rsum(embeddings, cfg, partition_id)}
    return Message(RecordDict({protocol.METRICS: MetricRecord(metrics)}), reply_to=msg)
