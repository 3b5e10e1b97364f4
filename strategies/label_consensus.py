"""KeyedFedAvg that also agrees on what chance looks like: the clients' decoy-confidence histograms are
pooled into one null that goes back to every client (semfed.retrieval.labels)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from semfed import protocol
from semfed.retrieval.labels import HISTOGRAM_BINS, NULL
from semfed.update_validation import histogram_problem
from strategies.keyed_fedavg import KeyedFedAvg, Update, record_nbytes

CONSENSUS_BYTES = 8 * HISTOGRAM_BINS  # the pooled null, float64 per bin, in each client's train config


def pool_nulls(nulls: list[np.ndarray]) -> np.ndarray:
    """The federation's null [HISTOGRAM_BINS] from the clients' decoy histograms: each bin's median over the
    clients of its share of that client's decoys, renormalised to shares and scaled to the decoys counted
    in all (only the shares matter to a cut). Zeros when no client counted a decoy, or when the medians
    are all zero (no bin that at least half the clients share)."""
    counted = [null for null in nulls if null.sum() > 0]
    if not counted:
        return np.zeros(HISTOGRAM_BINS)
    median = np.median([null / null.sum() for null in counted], axis=0)
    if median.sum() <= 0:
        return np.zeros(HISTOGRAM_BINS)
    return median / median.sum() * sum(null.sum() for null in counted)


class LabelConsensusFedAvg(KeyedFedAvg):
    """Per round, pools the accepted replies' 'label-stats' null histograms (each label's decoy confidence)
    into the federation's null, sent as 'label-consensus' in the next round's train config: a client's
    noise cut then measures its excess of chance-level labels against every client's decoys, not only its
    own few hundred. consensus_history keeps the pooled null's mean and std per round for the metrics.
    The statistics and the consensus are counted in the round's bytes. A malformed histogram (semfed.
    update_validation.histogram_problem: more labels than the client claims or than its assigned shard
    holds) rejects the whole reply, update too.

    Pooling (pool_nulls) takes each bin's median over the clients of their histograms' shares, so that a
    well-formed but skewed null from a minority of clients cannot move every client's cut (a sum would
    let one client of ten, mass piled just above chance, raise the others' cuts)."""

    STATE = KeyedFedAvg.STATE + ("consensus", "consensus_history")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.consensus: list[float] | None = None
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
        """Reads the reply's null histogram (if any) into update.extras; its problem, or None."""
        if protocol.LABEL_STATS not in update.msg.content:
            return None
        record = update.msg.content[protocol.LABEL_STATS]
        if not isinstance(record, ArrayRecord) or list(record) != [NULL]:
            return f"'{protocol.LABEL_STATS}' is not an ArrayRecord holding only '{NULL}'"
        null = record[NULL].numpy()
        known_cap = self.judging.example_caps.get(update.partition, self.judging.max_examples or math.inf)
        problem = histogram_problem(null, HISTOGRAM_BINS, min(update.claimed, known_cap))
        if problem is None:
            update.extras[protocol.LABEL_STATS] = (null, record_nbytes(record))
        return problem

    def accepted_hook(self, server_round: int, accepted: list[Update]) -> None:
        stats = [u.extras[protocol.LABEL_STATS] for u in accepted if protocol.LABEL_STATS in u.extras]
        pooled = pool_nulls([null for null, _ in stats])
        if pooled.sum() > 0:
            self.consensus = [float(v) for v in pooled]
            centres = (np.arange(HISTOGRAM_BINS) + 0.5) / HISTOGRAM_BINS
            mean = float((pooled * centres).sum() / pooled.sum())
            self.consensus_history[server_round] = (mean, float(np.sqrt((pooled * (centres - mean) ** 2).sum() / pooled.sum())))
        self.round_stats[server_round]["bytes_received"] += sum(nbytes for _, nbytes in stats)
