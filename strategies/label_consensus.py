"""KeyedFedAvg that also agrees on what a noisy label looks like: the clients' confidence
histograms are fitted together into one shared noise component that goes back to every client."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from semfed import protocol
from semfed.retrieval.labels import HISTOGRAM_BINS, fit_noise_mixture
from semfed.update_validation import histogram_problem
from strategies.keyed_fedavg import KeyedFedAvg, Update, record_nbytes

HISTOGRAM = "confidence-histogram"
CONSENSUS_BYTES = 16  # two float64 (noise mean, noise std) in each client's train config


class LabelConsensusFedAvg(KeyedFedAvg):
    """Per round, fits the clients' 'label-stats' histograms jointly (semfed.retrieval.labels.
    fit_noise_mixture: one noise component shared by all, a clean component per client)
    and sends the noise component's (mean, std) as 'label-consensus' in the next round's
    train config. The statistics and the consensus are counted in the round's bytes; only
    the accepted updates' statistics are fitted. A malformed histogram (semfed.update_validation.
    histogram_problem: more labels than the client claims or than its assigned shard holds) rejects the
    whole reply, update too; a histogram counting more labels than the client's capped weight (a cap
    at the round's median) is scaled down to it before the fit."""

    STATE = KeyedFedAvg.STATE + ("consensus", "consensus_history")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.consensus: tuple[float, float] | None = None
        self.consensus_history: dict[int, tuple[float, float]] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        if self.consensus is not None:
            config = ConfigRecord({**config, protocol.LABEL_CONSENSUS: list(self.consensus)})
        messages = super().configure_train(server_round, arrays, config, grid)
        if self.consensus is not None:
            self.round_stats[server_round]["bytes_sent"] += CONSENSUS_BYTES * len(messages)
        return messages

    def extra_problem(self, update: Update) -> str | None:
        """Reads the reply's histogram (if any) into update.extras; its problem, or None."""
        if protocol.LABEL_STATS not in update.msg.content:
            return None
        record = update.msg.content[protocol.LABEL_STATS]
        if not isinstance(record, ArrayRecord) or list(record) != [HISTOGRAM]:
            return f"'{protocol.LABEL_STATS}' is not an ArrayRecord holding only '{HISTOGRAM}'"
        histogram = record[HISTOGRAM].numpy()
        known_cap = self.judging.example_caps.get(update.partition, self.judging.max_examples or math.inf)
        problem = histogram_problem(histogram, HISTOGRAM_BINS, min(update.claimed, known_cap))
        if problem is None:
            update.extras[protocol.LABEL_STATS] = (histogram, record_nbytes(record))
        return problem

    def accepted_hook(self, server_round: int, accepted: list[Update]) -> None:
        stats = [(*u.extras[protocol.LABEL_STATS], u.weight) for u in accepted if protocol.LABEL_STATS in u.extras]
        if stats:
            histograms = [h if h.sum() <= weight else h * (weight / h.sum()) for h, _, weight in stats]
            mixture = fit_noise_mixture(np.stack(histograms))
            self.consensus = (mixture.noise_mean, mixture.noise_std)
            self.consensus_history[server_round] = self.consensus
            self.round_stats[server_round]["bytes_received"] += sum(nbytes for _, nbytes, _ in stats)
