"""Which user a ClientApp plays for a message."""

from __future__ import annotations

from flwr.app import Context, Message

from semfed import protocol


def played_partition(msg: Message, context: Context) -> int:
    """The user this node trains as: the train config's partition-id in a pooled run (supernode-pool: the
    server assigns the round's sampled users to the pool's nodes), else the node's own from its node config."""
    config = msg.content[protocol.CONFIG]
    return int(config[protocol.PARTITION_ID] if protocol.PARTITION_ID in config else context.node_config[protocol.PARTITION_ID])
