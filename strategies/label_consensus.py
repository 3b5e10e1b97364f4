"""KeyedFedAvg that also agrees on which labels are noisy: clients' confidence histograms
are pooled into a federation-wide consistency cut that goes back to every client."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid

from semfed.labels import mixture_threshold
from strategies.keyed_fedavg import KeyedFedAvg, record_nbytes

STATS = "label-stats"
CONSENSUS = "label-consensus"
CONSENSUS_BYTES = 8  # one float64 in each client's train config


class LabelConsensusFedAvg(KeyedFedAvg):
    """Per round, sums the clients' 'label-stats' confidence histograms and fits the
    consensus cut (semfed.labels.mixture_threshold, `fallback` when the pooled labels show
    no low mode); the next round's train config carries it as 'label-consensus'. The
    statistics and the cut are counted in the round's bytes."""

    def __init__(self, fallback: float, **kwargs):
        super().__init__(**kwargs)
        self.fallback = fallback
        self.consensus: float | None = None
        self.consensus_history: dict[int, float] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        if self.consensus is not None:
            config = ConfigRecord({**config, CONSENSUS: self.consensus})
        messages = super().configure_train(server_round, arrays, config, grid)
        if self.consensus is not None:
            self.round_stats[server_round]["bytes_sent"] += CONSENSUS_BYTES * len(messages)
        return messages

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        result = super().aggregate_train(server_round, replies)
        stats = [msg.content[STATS] for msg in replies if msg.has_content() and STATS in msg.content]
        if stats:
            pooled = np.sum([record["confidence-histogram"].numpy() for record in stats], axis=0)
            self.consensus = mixture_threshold(pooled, self.fallback)
            self.consensus_history[server_round] = self.consensus
            self.round_stats[server_round]["bytes_received"] += sum(record_nbytes(r) for r in stats)
        return result
