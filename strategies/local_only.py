"""Local-only baseline: every client trains its own model from the common initialisation, alone."""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid

from strategies.keyed_fedavg import KeyedFedAvg


class LocalOnly(KeyedFedAvg):
    """Nothing is averaged. The strategy keeps each client's latest arrays by partition id
    (`client_arrays`, which the server evaluates client by client) and sends them back to that
    client alone next round; round 1 sends everyone the initial arrays. This return trip is a
    simulation device (a real user would keep its model), so bytes on the air are counted as 0."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.client_arrays: dict[int, ArrayRecord] = {}
        self.partition_of_node: dict[int, int] = {}

    def _construct_messages(self, record: RecordDict, node_ids: list[int], message_type: str) -> Iterable[Message]:
        messages = []
        for node_id in node_ids:
            pid = self.partition_of_node.get(node_id)
            arrays = record[self.arrayrecord_key] if pid is None else self.client_arrays[pid]
            content = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: record[self.configrecord_key]})
            messages.append(Message(content=content, message_type=message_type, dst_node_id=node_id))
        return messages

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        messages = super().configure_train(server_round, arrays, config, grid)
        self.round_stats[server_round]["bytes_sent"] = 0
        return messages

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        accepted = self.collect_replies(server_round, replies)
        self.round_stats[server_round]["bytes_received"] = 0
        if accepted is None:
            return None, None
        for msg in accepted:
            pid = int(msg.content["metrics"]["partition-id"])
            self.partition_of_node[msg.metadata.src_node_id] = pid
            self.client_arrays[pid] = msg.content[self.arrayrecord_key]
        return self.global_arrays, self.round_metrics(server_round, [msg.content for msg in accepted])
