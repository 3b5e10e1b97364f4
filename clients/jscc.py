"""ClientApp side of D-JSCC (task = jscc): one user holds one decoder and trains in the role
the server's framework strategy gives it (semfed.jscc.federation.train_role)."""

from __future__ import annotations

import functools

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict

from semfed import protocol
from semfed.config import SemfedConfig
from semfed.data.image_folder import load_images
from semfed.jscc.federation import (
    ENCODER,
    ENCODER_ROLES,
    build_encoder,
    build_user_decoder,
    decoder_prefix,
    prefixed,
    train_role,
    training_batches,
    unprefixed,
)
from semfed.seeds import client_round_seed


@functools.lru_cache(maxsize=2)
def cached_images(folder: str) -> list[np.ndarray]:
    """The training images, decoded once per process."""
    return load_images(folder or None)


def train(msg: Message, context: Context, cfg: SemfedConfig) -> Message:
    """Load the encoder and this client's decoder from the message, train them in the given role,
    reply with what the role trains: the decoder, plus the encoder unless the role is 'stage2'."""
    partition_id = int(context.node_config[protocol.PARTITION_ID])
    if partition_id >= len(cfg.decoder_specs):
        raise ValueError(f"partition-id {partition_id} has no decoder: jscc-decoders lists {len(cfg.decoder_specs)}")
    config = msg.content["config"]
    role, server_round = str(config[protocol.JSCC_ROLE]), int(config[protocol.SERVER_ROUND])
    state = msg.content["arrays"].to_torch_state_dict()
    device = cfg.torch_device
    encoder, decoder = build_encoder(cfg), build_user_decoder(cfg, partition_id)
    encoder.load_state_dict(unprefixed(state, ENCODER))
    decoder.load_state_dict(unprefixed(state, decoder_prefix(partition_id)))
    encoder.to(device)
    decoder.to(device)
    generator = torch.Generator(device=device).manual_seed(client_round_seed(cfg.seed, server_round, partition_id))
    batches = training_batches(cfg, cached_images(cfg.jscc_images), generator, device)
    losses = train_role(role, cfg, encoder, decoder, batches, generator)

    arrays = prefixed(decoder.state_dict(), decoder_prefix(partition_id))
    if role in ENCODER_ROLES:
        arrays.update(prefixed(encoder.state_dict(), ENCODER))
    metrics = {"train_loss": float(np.mean(losses)), "steps": len(losses), protocol.PARTITION_ID: partition_id,
               "num-examples": sum(len(b) for b in batches)}
    return Message(RecordDict({"arrays": ArrayRecord(arrays), "metrics": MetricRecord(metrics)}), reply_to=msg)
