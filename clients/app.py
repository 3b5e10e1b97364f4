"""ClientApp: one user trains the global adapter on its shard through its own frozen encoders."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from semfed.config import SemfedConfig
from semfed.participants import build_adapter, client_seed, client_shard, dataset_and_skb
from semfed.training import train_local

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Load the global arrays this client holds keys for, train locally, reply with them."""
    cfg = SemfedConfig.from_run_config(context.run_config)
    partition_id = int(context.node_config["partition-id"])
    profiles = cfg.client_profiles
    if partition_id >= len(profiles):
        raise ValueError(f"partition-id {partition_id} has no client profile: 'clients' lists {len(profiles)}")
    profile = profiles[partition_id]
    config = msg.content["config"]
    server_round = int(config["server-round"])
    _, skb = dataset_and_skb(cfg)
    if config["skb-version"] != skb.version:
        raise ValueError(f"SKB mismatch: server has {config['skb-version']}, this client {skb.version}")

    model = build_adapter(cfg, profile.encoders, seed=0)
    global_state = msg.content["arrays"].to_torch_state_dict()
    model.load_state_dict({key: global_state[key] for key in model.state_dict()})
    device = cfg.torch_device
    model.to(device)
    shard = client_shard(cfg, partition_id)
    stats = train_local(model, shard, cfg, profile.local_epochs, client_seed(cfg, server_round, partition_id), device)

    metrics = MetricRecord({**stats, "num-examples": len(shard), "partition-id": partition_id})
    arrays = ArrayRecord({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)
