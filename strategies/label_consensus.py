"""KeyedFedAvg that also agrees on what a noisy label looks like: the clients' confidence
histograms are fitted together into one shared noise component that goes back to every client."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid

from semfed.labels import fit_noise_mixture
from strategies.keyed_fedavg import KeyedFedAvg, record_nbytes

STATS = "label-stats"
CONSENSUS = "label-consensus"
CONSENSUS_BYTES = 16  # two float64 (noise mean, noise std) in each client's train config


class LabelConsensusFedAvg(KeyedFedAvg):
    """Per round, fits the clients' 'label-stats' histograms jointly (semfed.labels.
    fit_noise_mixture: one noise component shared by all, a clean component per client)
    and sends the noise component's (mean, std) as 'label-consensus' in the next round's
    train config. The statistics and the consensus are counted in the round's bytes; only
    the accepted updates' statistics are fitted."""

    STATE = KeyedFedAvg.STATE + ("consensus", "consensus_history")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.consensus: tuple[float, float] | None = None
        self.consensus_history: dict[int, tuple[float, float]] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        if self.consensus is not None:
            config = ConfigRecord({**config, CONSENSUS: list(self.consensus)})
        messages = super().configure_train(server_round, arrays, config, grid)
        if self.consensus is not None:
            self.round_stats[server_round]["bytes_sent"] += CONSENSUS_BYTES * len(messages)
        return messages

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        result = super().aggregate_train(server_round, replies)
        accepted = self.client_metrics.get(server_round, {})
        stats = [msg.content[STATS] for msg in replies if msg.has_content() and STATS in msg.content
                 and int(msg.content["metrics"]["partition-id"]) in accepted]
        if stats:
            histograms = np.stack([record["confidence-histogram"].numpy() for record in stats])
            mixture = fit_noise_mixture(histograms)
            self.consensus = (mixture.noise_mean, mixture.noise_std)
            self.consensus_history[server_round] = self.consensus
            self.round_stats[server_round]["bytes_received"] += sum(record_nbytes(r) for r in stats)
        return result
