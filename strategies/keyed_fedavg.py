"""FedAvg over heterogeneous clients: each array key is averaged over the clients that hold it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from semfed.aggregation import keyed_weighted_average
from semfed.update_validation import update_problem

log = logging.getLogger("semfed.strategy")
DIAGNOSTICS = "label-diagnostics"  # a reply's simulation-only record (clients/app.py): for the metrics table only


def record_nbytes(record: ArrayRecord) -> int:
    """Payload bytes of an ArrayRecord (sum of its arrays' serialised data)."""
    return sum(len(array.data) for array in record.values())


class KeyedFedAvg(FedAvg):
    """FedAvg where clients with different encoders return different stems.

    Replies are sorted by their 'partition-id' metric before summing, so the result does
    not depend on arrival order. A reply with an error or none before the timeout counts as
    a failed client; an update that semfed.update_validation rejects is logged and left out;
    with fewer than `min_replies` accepted updates the round is skipped (the model is kept).
    Per round, `round_stats` holds bytes on the air, clients sampled, replied and failed,
    updates rejected, whether the round was skipped, and the aggregated client metrics;
    `client_metrics` each accepted client's own metrics by partition id; `client_diagnostics`
    each accepted client's 'label-diagnostics' record (its integer counts) by partition id,
    which is neither averaged nor counted in the bytes.
    """

    STATE = ("round_stats", "client_metrics")  # what a checkpoint keeps (strategies.resumable)

    def __init__(self, min_replies: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.min_replies = min_replies
        self.global_arrays: ArrayRecord | None = None
        self.round_stats: dict[int, dict[str, float]] = {}
        self.client_metrics: dict[int, dict[int, dict[str, float]]] = {}
        self.client_diagnostics: dict[int, dict[int, dict[str, int]]] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.global_arrays = arrays
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self.round_stats[server_round] = {"bytes_sent": len(messages) * record_nbytes(arrays), "bytes_received": 0,
                                      "clients_sampled": len(messages), "clients_replied": 0}
        return messages

    def may_change(self, server_round: int, partition: int) -> Callable[[str], bool] | None:
        """Which array keys client `partition` may send back (None: any key of the global model)."""
        return None

    def accepted(self, server_round: int, replies: list[Message]) -> list[Message]:
        """The replies whose update passes semfed.update_validation; the others are logged."""
        reference = {key: array.numpy() for key, array in self.global_arrays.items()}
        kept = []
        for msg in replies:
            content, pid = msg.content, None
            if self.arrayrecord_key not in content or "metrics" not in content \
                    or "partition-id" not in content["metrics"] or self.weighted_by_key not in content["metrics"]:
                problem = f"reply lacks '{self.arrayrecord_key}', 'partition-id' or '{self.weighted_by_key}'"
            else:
                pid = int(content["metrics"]["partition-id"])
                update = {k: a.numpy() for k, a in content[self.arrayrecord_key].items()}
                problem = update_problem(update, reference, content["metrics"][self.weighted_by_key],
                                         self.may_change(server_round, pid))
            if problem is None:
                kept.append(msg)
            else:
                log.warning("round %d: rejected the update of node %d (partition %s): %s", server_round,
                            msg.metadata.src_node_id, pid, problem)
        return kept

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        accepted = self.collect_replies(server_round, replies)
        if accepted is None:
            return None, None
        contents = [msg.content for msg in accepted]
        current = {key: array.numpy() for key, array in self.global_arrays.items()}
        updates = [({k: a.numpy() for k, a in c[self.arrayrecord_key].items()}, float(c["metrics"][self.weighted_by_key]))
                   for c in contents]
        averaged = keyed_weighted_average(updates, current)
        return ArrayRecord({key: Array(value) for key, value in averaged.items()}), self.round_metrics(server_round, contents)

    def collect_replies(self, server_round: int, replies: Iterable[Message]) -> list[Message] | None:
        """The accepted replies in partition order (None when the round is skipped); records replies,
        failures, rejections, bytes and each accepted client's metrics."""
        valid, _ = self._check_and_log_replies(list(replies), is_train=True, validate=False)
        stats = self.round_stats[server_round]
        stats["clients_replied"], stats["clients_failed"] = len(valid), stats["clients_sampled"] - len(valid)
        stats["bytes_received"] = sum(record_nbytes(m.content[self.arrayrecord_key]) for m in valid
                                      if self.arrayrecord_key in m.content)
        accepted = sorted(self.accepted(server_round, valid), key=lambda m: m.content["metrics"]["partition-id"])
        stats["updates_rejected"] = len(valid) - len(accepted)
        stats["skipped"] = int(len(accepted) < self.min_replies)
        if stats["skipped"]:
            log.warning("round %d skipped: %d accepted updates, min-replies is %d (%d clients failed, %d rejected)",
                        server_round, len(accepted), self.min_replies, stats["clients_failed"], stats["updates_rejected"])
            return None
        self.client_metrics[server_round] = {int(m.content["metrics"]["partition-id"]): dict(m.content["metrics"])
                                             for m in accepted}
        self.client_diagnostics[server_round] = {
            int(m.content["metrics"]["partition-id"]): {k: v for k, v in m.content[DIAGNOSTICS].items()
                                                        if isinstance(v, int) and v >= 0}
            for m in accepted if isinstance(m.content.get(DIAGNOSTICS), MetricRecord)}
        return accepted

    def round_metrics(self, server_round: int, contents: list) -> MetricRecord:
        """Clients' 'metrics' records averaged (weighted by examples), also kept in round_stats."""
        metrics = self.train_metrics_aggr_fn([RecordDict({"metrics": c["metrics"]}) for c in contents],
                                             self.weighted_by_key)
        self.round_stats[server_round].update({key: value for key, value in metrics.items() if key != "partition-id"})
        return metrics
