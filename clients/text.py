"""ClientApp side of seed 003's text task (task = text): one wireless-powered device trains the shared
text codec on its share of the sentences and replies with the whole codec."""

from __future__ import annotations

import functools

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict

from semfed import protocol
from semfed.config import SemfedConfig
from semfed.seeds import client_round_seed
from semfed.text.data import TextData, load_text_data, shard
from semfed.text.training import build_codec, train_codec


@functools.lru_cache(maxsize=2)
def cached_data(cfg: SemfedConfig) -> TextData:
    """The run's sentences and features, read once per process."""
    return load_text_data(cfg)


def train(msg: Message, context: Context, cfg: SemfedConfig) -> Message:
    """text-steps-per-round steps on this device's sentences (fewer when the simulated network's budget
    allows fewer examples), from the codec in the message; reply with the codec."""
    partition_id = int(context.node_config[protocol.PARTITION_ID])
    if partition_id >= cfg.text_devices:
        raise ValueError(f"partition-id {partition_id} is no device: text-devices is {cfg.text_devices}")
    config = msg.content["config"]
    server_round = int(config[protocol.SERVER_ROUND])
    data = cached_data(cfg)
    device = cfg.torch_device
    codec = build_codec(cfg, data)
    codec.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    codec.to(device)
    rows = shard(cfg, data.train, partition_id)
    steps = cfg.text_steps_per_round
    budget = config.get(protocol.MAX_EXAMPLES)  # the examples that fit before the simulated deadline
    if budget is not None:
        steps = min(steps, int(budget) // cfg.text_batch_size)
    generator = torch.Generator(device=device).manual_seed(client_round_seed(cfg.seed, server_round, partition_id))
    losses = train_codec(codec, data.train.feats[rows], data.train.ids[rows], cfg, steps, generator, device)
    metrics = {"steps": len(losses), "num-examples": len(losses) * cfg.text_batch_size,
               protocol.PARTITION_ID: partition_id, **({"train_loss": float(np.mean(losses))} if losses else {})}
    state = {k: v.detach().cpu() for k, v in codec.state_dict().items()}
    return Message(RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord(metrics)}), reply_to=msg)
