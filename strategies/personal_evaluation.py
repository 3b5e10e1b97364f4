"""Strategy mixin for personalisation (personal-finetune-epochs > 0): after the last round every user is sent
the global adapter in an EVALUATE message, fine-tunes a copy on its own shard and replies only its own-test
RSUM with the global adapter and with its copy (clients/retrieval.personalise). A reply is untrusted: one
with an error, from an unknown node, claiming another partition or holding anything but two RSUMs in
[0, 600] (NaN for a user without test images) is logged and left out; the global arrays never change."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid

from semfed import protocol
from semfed.update_validation import is_number
from strategies.keyed_fedavg import KeyedFedAvg

log = logging.getLogger("semfed.strategy")
RSUM_MAX = 600.0  # six recalls in percent


class PersonalEvaluation:
    """Mixin before a KeyedFedAvg: `personal_round` (the run's last round) is when the users personalise;
    `personal` holds partition id -> (RSUM with the global adapter, with the personal copy)."""

    personal_round: int = 0

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        if server_round != self.personal_round:
            return []
        connected = set(grid.get_node_ids())
        record = {**config, protocol.SERVER_ROUND: server_round}
        return [Message(RecordDict({self.arrayrecord_key: self.arrays_for(pid, arrays),
                                    self.configrecord_key: ConfigRecord(record)}),
                        dst_node_id=node, message_type=MessageType.EVALUATE)
                for pid, node in sorted(self.nodes.items()) if node in connected]

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        for msg in replies:
            pid = self.partition_of.get(msg.metadata.src_node_id)
            problem = personal_problem(msg, pid)
            if problem:
                log.warning("round %d: personalisation reply of node %d left out: %s", server_round,
                            msg.metadata.src_node_id, problem)
                continue
            metrics = msg.content[protocol.METRICS]
            self.personal[pid] = (float(metrics[protocol.RSUM_GLOBAL]), float(metrics[protocol.RSUM_PERSONAL]))
        return None


def personal_problem(msg: Message, pid: int | None) -> str | None:
    """Why a personalisation reply is left out, or None."""
    if pid is None:
        return "not a node of this federation"
    if msg.has_error():
        return f"error reply ({msg.error.reason[:200]})"
    metrics = msg.content.get(protocol.METRICS)
    if not isinstance(metrics, MetricRecord):
        return f"no MetricRecord '{protocol.METRICS}'"
    expected = {protocol.PARTITION_ID, protocol.RSUM_GLOBAL, protocol.RSUM_PERSONAL}
    if set(metrics) != expected:
        return f"metrics {sorted(metrics)}, expected {sorted(expected)}"
    if not (is_number(metrics[protocol.PARTITION_ID]) and metrics[protocol.PARTITION_ID] == pid):
        return f"claims partition-id {metrics[protocol.PARTITION_ID]!r}, but the node is partition {pid}"
    for key in (protocol.RSUM_GLOBAL, protocol.RSUM_PERSONAL):
        value = metrics[key]
        real = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (real and (math.isnan(value) or 0 <= value <= RSUM_MAX)):
            return f"{key} {value!r} is not an RSUM in [0, {RSUM_MAX:g}]"
    return None


def personalised(strategy_class: type[KeyedFedAvg]) -> type[KeyedFedAvg]:
    """`strategy_class` with PersonalEvaluation; its checkpoint keeps `personal`."""
    def __init__(self, **kwargs):
        strategy_class.__init__(self, **kwargs)
        self.personal: dict[int, tuple[float, float]] = {}

    return type(strategy_class.__name__, (PersonalEvaluation, strategy_class),
                {"__init__": __init__, "STATE": strategy_class.STATE + ("personal",)})
