"""Local-only baseline: every client trains its own model from the common initialisation, alone."""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid

from strategies.keyed_fedavg import KeyedFedAvg


class LocalOnly(KeyedFedAvg):
    """Nothing is averaged. The strategy keeps each client's latest accepted arrays by partition id
    (`client_arrays`, which the server evaluates client by client) and sends them back to that
    client alone next round; round 1 sends everyone the initial arrays. This return trip is a
    simulation device (a real user would keep its model), so bytes on the air are counted as 0."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.client_arrays: dict[int, ArrayRecord] = {}

    def arrays_for(self, partition: int, arrays: ArrayRecord) -> ArrayRecord:
        return self.client_arrays.get(partition, arrays)

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
        for update in accepted:
            self.client_arrays[update.partition] = update.msg.content[self.arrayrecord_key]
        return self.global_arrays, self.round_metrics(server_round, accepted)
