"""FedAvg over heterogeneous clients: each array key is averaged over the clients that hold it."""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from semfed.aggregation import keyed_weighted_average


def record_nbytes(record: ArrayRecord) -> int:
    """Payload bytes of an ArrayRecord (sum of its arrays' serialised data)."""
    return sum(len(array.data) for array in record.values())


class KeyedFedAvg(FedAvg):
    """FedAvg where clients with different encoders return different stems.

    Replies are sorted by their 'partition-id' metric before summing, so the result does
    not depend on arrival order. Per round, `round_stats` holds bytes on the air, clients
    sampled and replied, and the aggregated client metrics; `client_metrics` each replying
    client's own metrics by partition id.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.global_arrays: ArrayRecord | None = None
        self.round_stats: dict[int, dict[str, float]] = {}
        self.client_metrics: dict[int, dict[int, dict[str, float]]] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.global_arrays = arrays
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self.round_stats[server_round] = {"bytes_sent": len(messages) * record_nbytes(arrays), "bytes_received": 0,
                                      "clients_sampled": len(messages), "clients_replied": 0}
        return messages

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        contents = self.collect_replies(server_round, replies)
        if not contents:
            return None, None
        current = {key: array.numpy() for key, array in self.global_arrays.items()}
        updates = [({k: a.numpy() for k, a in c[self.arrayrecord_key].items()}, float(c["metrics"][self.weighted_by_key]))
                   for c in contents]
        averaged = keyed_weighted_average(updates, current)
        return ArrayRecord({key: Array(value) for key, value in averaged.items()}), self.round_metrics(server_round, contents)

    def collect_replies(self, server_round: int, replies: Iterable[Message]) -> list:
        """The valid replies' contents in partition order; records replies, bytes and client metrics."""
        valid, _ = self._check_and_log_replies(list(replies), is_train=True, validate=False)
        contents = sorted((msg.content for msg in valid), key=lambda c: c["metrics"]["partition-id"])
        stats = self.round_stats[server_round]
        stats["clients_replied"] = len(contents)
        self.client_metrics[server_round] = {int(c["metrics"]["partition-id"]): dict(c["metrics"]) for c in contents}
        stats["bytes_received"] = sum(record_nbytes(c[self.arrayrecord_key]) for c in contents)
        return contents

    def round_metrics(self, server_round: int, contents: list) -> MetricRecord:
        """Clients' metrics averaged (weighted by examples), also kept in round_stats."""
        metrics = self.train_metrics_aggr_fn(contents, self.weighted_by_key)
        self.round_stats[server_round].update({key: value for key, value in metrics.items() if key != "partition-id"})
        return metrics
