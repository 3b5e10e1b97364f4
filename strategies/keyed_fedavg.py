"""FedAvg over heterogeneous clients: every reply judged on its own, then each array key aggregated over
the clients that hold it (semfed.aggregation's rule of the config)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from semfed import protocol
from semfed.aggregation import RuleParams, fair_weights, keyed_aggregate
from semfed.churn import Churn
from semfed.compression import Compression, decompress_update
from semfed.config import SemfedConfig
from semfed.network import Network
from semfed.participation import Participation
from semfed.scheduling import SCHEDULERS, Scheduler
from semfed.update_validation import Judging, example_cap, is_number, norm_outliers, update_problem

log = logging.getLogger("semfed.strategy")


def record_nbytes(record: ArrayRecord) -> int:
    """Payload bytes of an ArrayRecord (sum of its arrays' serialised data)."""
    return sum(len(array.data) for array in record.values())


def judged_options(cfg: SemfedConfig, example_caps: Mapping[int, float]) -> dict:
    """The strategy keyword arguments of the aggregation and update-judging config keys."""
    return {"seed": cfg.seed, "aggregation": cfg.aggregation, "compression": cfg.compression,
            "fairness_q": cfg.fairness_q, "churn": cfg.churn_model, "scheduler": SCHEDULERS[cfg.scheduling],
            "rule_params": RuleParams(cfg.trim_fraction, cfg.krum_byzantine),
            "judging": Judging(dict(example_caps), cfg.max_client_examples, cfg.update_norm_multiple)}


@dataclass
class Update:
    """One reply read by the server: the partition the server maps its node to, its arrays by key,
    its weight (claimed num-examples, then capped) and its finite numeric metrics."""

    msg: Message
    partition: int
    arrays: dict[str, np.ndarray]
    claimed: float
    metrics: dict[str, float]
    weight: float = 0.0
    extras: dict = field(default_factory=dict)


class KeyedFedAvg(FedAvg):
    """FedAvg where clients with different encoders return different stems.

    nodes: partition id -> Flower node id (server.nodes.discover_partitions); a reply's partition is its
    node's, its own 'partition-id' must agree or it is rejected. With pooled_users = N > 0 (supernode-pool),
    `nodes` are the pool's slots and the users are partitions 0..N-1, assigned to pool nodes each round
    (train_messages). configure_train sends to the nodes of
    the round's plan (semfed.participation: the users online under churn, seeded uniform sampling by
    partition id or the semantic auction, the simulated network's example budgets); a sampled node not
    connected, a reply with an error or none before the timeout counts as a failed client; with the
    simulated network a reply after the deadline is dropped, or kept for the next round (drop_late,
    keep_stale). Every reply is judged on its own
    (semfed.update_validation; any exception while reading it is a rejection), its num-examples capped
    (Judging), then updates too far from the round's median are rejected; a rejection is logged with
    node and partition. The accepted updates are aggregated in partition order by `aggregation`
    (semfed.aggregation.AGGREGATIONS); with fewer than `min_replies` of them the round is skipped.
    Per round, `round_stats` holds bytes on the air, clients sampled, replied and failed, updates
    rejected, weights capped, whether the round was skipped, and the aggregated client metrics;
    `client_metrics` each accepted client's own metrics by partition id. `client_diagnostics` each accepted client's
    'label-diagnostics' record (non-negative integer counts) by partition id: never averaged, never counted
    in the bytes, never read by the labelling.
    """

    STATE = ("round_stats", "client_metrics", "network_log", "stale_updates")  # what a checkpoint keeps (server.resume)

    def __init__(self, nodes: Mapping[int, int] | None = None, seed: int = 0, aggregation: str = "mean",
                 rule_params: RuleParams = RuleParams(), judging: Judging = Judging(), min_replies: int = 1,
                 network: Network | None = None, upload_bytes: Mapping[int, int] | None = None,
                 compression: Compression = Compression(), fairness_q: float = 0.0, churn: Churn | None = None,
                 scheduler: Scheduler = SCHEDULERS["uniform"], pooled_users: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.nodes = dict(nodes or {})
        self.pooled = pooled_users > 0
        self.users = tuple(range(pooled_users)) if self.pooled else tuple(self.nodes)
        self.partition_of = {} if self.pooled else {node: pid for pid, node in self.nodes.items()}
        self.seed, self.aggregation, self.rule_params, self.judging = seed, aggregation, rule_params, judging
        self.min_replies = min_replies
        self.global_arrays: ArrayRecord | None = None
        self.sampled: dict[int, list[int]] = {}
        self.round_stats: dict[int, dict[str, float]] = {}
        self.client_metrics: dict[int, dict[int, dict[str, float]]] = {}
        self.client_diagnostics: dict[int, dict[int, dict[str, int]]] = {}
        self.network, self.upload_bytes, self.compression = network, dict(upload_bytes or {}), compression
        self.fairness_q, self.churn, self.scheduler = fairness_q, churn, scheduler
        self.budgets: dict[int, dict[int, int]] = {}  # round -> partition -> examples it may train (network)
        self.bands: dict[int, dict[int, float]] = {}  # round -> partition -> its uplink band in Hz (network)
        self.network_log: dict[int, list[dict]] = {}  # round -> each sampled user's simulated round (ClientRound)
        self.stale_updates: list[dict] = []  # late updates kept for the next round (keep_stale; straggler-policy stale)

    def arrays_for(self, partition: int, arrays: ArrayRecord) -> ArrayRecord:
        """What client `partition` is sent to train on (here: the global arrays)."""
        return arrays

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.global_arrays = arrays
        plan = self.participation().plan(server_round, self.latest_losses())
        self.budgets[server_round], self.bands[server_round] = plan.budgets, plan.bands
        if plan.no_budget:
            self.network_log[server_round] = list(plan.no_budget)
        round_config = {**config, protocol.SERVER_ROUND: server_round}
        messages = self.train_messages(
            server_round, plan.asked, lambda pid: self.arrays_for(pid, arrays),
            lambda pid: ConfigRecord({**round_config, **({protocol.MAX_EXAMPLES: plan.budgets[pid]}
                                                         if pid in plan.budgets else {})}), grid)
        self.round_stats[server_round].update(clients_sampled=len(plan.partitions), **plan.stats)
        self.round_stats[server_round]["bytes_sent"] = sum(record_nbytes(m.content[self.arrayrecord_key])
                                                           for m in messages)
        return messages

    def participation(self) -> Participation:
        """Who takes part in a round (semfed.participation), from this strategy's settings (fraction_train
        and min_train_nodes are FedAvg's)."""
        return Participation(self.users, self.seed, self.fraction_train, self.min_train_nodes,
                             dict(self.judging.example_caps), self.churn, self.scheduler, self.network,
                             self.upload_bytes)

    def latest_losses(self) -> dict[int, float]:
        """Each partition's latest reported (accepted) training loss."""
        return {pid: metrics["train_loss"] for r in sorted(self.client_metrics)
                for pid, metrics in self.client_metrics[r].items() if "train_loss" in metrics}

    def drop_late(self, server_round: int, replies: list[Message]) -> tuple[list[Message], list[Message]]:
        """The replies that arrive before the simulated deadline (all without a network), and the late ones
        the straggler policy keeps for the next round ('stale'; the others are dropped); logs each replying
        user's simulated round (trusted figures: the examples the server allowed, the bytes really received)
        and the round's simulated seconds, energy and late users in round_stats."""
        if self.network is None:
            return replies, []
        rows, kept, stale = self.network_log.setdefault(server_round, []), [], []
        timed = []
        for msg in replies:
            pid = self.partition_of.get(msg.metadata.src_node_id)
            if pid is None or pid not in self.sampled.get(server_round, ()):
                kept.append(msg)  # judged (and rejected) with the others
                continue
            arrays = msg.content.get(self.arrayrecord_key)
            examples = self.budgets.get(server_round, {}).get(pid, self.network.examples[pid])
            timing = self.network.client_round(server_round, pid, examples,
                                               record_nbytes(arrays) if isinstance(arrays, ArrayRecord) else 0,
                                               self.bands.get(server_round, {}).get(pid))
            timed.append(timing)
            if timing.status in ("late", "stale"):
                log.info("round %d: partition %d is late (%.1f s simulated, deadline %.1f s): its update is %s",
                         server_round, pid, timing.time_s, self.network.deadline_s,
                         "kept for the next round" if timing.status == "stale" else "dropped")
            if timing.status == "stale":
                stale.append(msg)
            elif timing.status != "late":
                kept.append(msg)
        rows += [t.row() for t in sorted(timed, key=lambda t: t.partition)]
        stats = self.round_stats[server_round]
        stats["clients_late"] = sum(t.status in ("late", "stale") for t in timed)
        stats["sim_round_s"] = self.network.round_seconds(timed)
        stats["energy_j"] = sum(t.energy_j for t in timed)
        return kept, stale

    def train_messages(self, server_round: int, partitions: list[int], arrays_of: Callable[[int], ArrayRecord],
                       config_of: ConfigRecord | Callable[[int], ConfigRecord], grid: Grid) -> list[Message]:
        """One TRAIN message per sampled partition whose node is connected; sets the round's sampled count.
        In a pooled run (pooled_users) the round's partitions go to the connected pool nodes in order, each
        message naming the partition its node plays (protocol.PARTITION_ID), and replies map back by node."""
        connected = set(grid.get_node_ids())
        node_of = self.nodes
        if self.pooled:
            node_of = dict(zip(partitions, (node for _, node in sorted(self.nodes.items()) if node in connected)))
            self.partition_of = {node: pid for pid, node in node_of.items()}
        messages = []
        for pid in partitions:
            node = node_of.get(pid)
            if node not in connected:
                log.warning("round %d: partition %d (node %s) is not connected: a failed client", server_round, pid,
                            node if node is not None else "none left in the pool")
                continue
            config = config_of(pid) if callable(config_of) else config_of
            if self.pooled:
                config = ConfigRecord({**config, protocol.PARTITION_ID: pid})
            content = RecordDict({self.arrayrecord_key: arrays_of(pid), self.configrecord_key: config})
            messages.append(Message(content, dst_node_id=node, message_type=MessageType.TRAIN))
        self.sampled[server_round] = list(partitions)
        self.round_stats[server_round] = {"bytes_sent": 0, "bytes_received": 0, "clients_sampled": len(partitions),
                                          "clients_replied": 0}
        return messages

    def may_change(self, server_round: int, partition: int) -> Callable[[str], bool] | None:
        """Which array keys client `partition` may send back (None: any key of the global model)."""
        return None

    def read_reply(self, server_round: int, msg: Message, reference: Mapping[str, np.ndarray]) -> Update | str:
        """The reply as an Update, or why it is rejected (judged alone; may raise on malformed content)."""
        node = msg.metadata.src_node_id
        pid = self.partition_of.get(node)
        if pid is None or pid not in self.sampled.get(server_round, ()):
            return f"node {node} was not asked to train in round {server_round}"
        content = msg.content
        arrays_record, metrics = content.get(self.arrayrecord_key), content.get("metrics")
        if not isinstance(arrays_record, ArrayRecord) or not isinstance(metrics, MetricRecord):
            return f"reply lacks the ArrayRecord '{self.arrayrecord_key}' or the MetricRecord 'metrics'"
        claimed_id = metrics.get(protocol.PARTITION_ID, pid)
        if not (is_number(claimed_id) and claimed_id == pid):
            return f"reply claims partition-id {claimed_id!r}, but node {node} is partition {pid}"
        claimed = metrics.get(self.weighted_by_key)
        update = {key: array.numpy() for key, array in arrays_record.items()}
        if self.compression.active:
            update = decompress_update(update, reference, self.compression)
        problem = update_problem(update, reference, claimed, self.may_change(server_round, pid))
        if problem is not None:
            return problem
        numbers = {k: v for k, v in metrics.items() if is_number(v) and k not in (protocol.PARTITION_ID, self.weighted_by_key)}
        return Update(msg, pid, update, claimed, numbers)

    def extra_problem(self, update: Update) -> str | None:
        """Why a reply's extra content (e.g. label statistics) rejects it, or None; may raise."""
        return None

    def reject(self, server_round: int, msg: Message, partition, problem: str) -> None:
        log.warning("round %d: rejected the update of node %s (partition %s): %s", server_round,
                    msg.metadata.src_node_id, partition, problem)

    def judge(self, server_round: int, replies: list[Message]) -> list[Update]:
        """The accepted updates of the round's error-free replies, in partition order, weights capped."""
        reference = {key: array.numpy() for key, array in self.global_arrays.items()}
        read: dict[int, Update] = {}
        for msg in replies:
            try:
                update = self.read_reply(server_round, msg, reference)
            except Exception as error:  # whatever one reply holds costs only that reply
                update = f"unreadable reply ({type(error).__name__}: {error})"
            if isinstance(update, Update) and update.partition in read:
                update = f"a second reply from partition {update.partition} in round {server_round}"
            if isinstance(update, str):
                self.reject(server_round, msg, self.partition_of.get(msg.metadata.src_node_id), update)
            else:
                read[update.partition] = update
        claims = {pid: u.claimed for pid, u in read.items()}
        capped = 0
        for pid, update in list(read.items()):
            update.weight = min(update.claimed, example_cap(pid, claims, self.judging),
                                self.budgets.get(server_round, {}).get(pid, math.inf))
            capped += update.weight < update.claimed
            try:
                problem = self.extra_problem(update)
            except Exception as error:
                problem = f"unreadable reply ({type(error).__name__}: {error})"
            if problem is not None:
                self.reject(server_round, update.msg, pid, problem)
                del read[pid]
        outliers = norm_outliers({pid: u.arrays for pid, u in read.items()}, reference, self.judging.norm_multiple)
        for pid, problem in sorted(outliers.items()):
            self.reject(server_round, read.pop(pid).msg, pid, problem)
        self.round_stats[server_round]["weights_capped"] = capped
        accepted = [read[pid] for pid in sorted(read)]
        fair = fair_weights([u.weight for u in accepted], [u.metrics.get("train_loss", 0.0) for u in accepted],
                            self.fairness_q)
        for update, weight in zip(accepted, fair):
            update.weight = weight
        return accepted

    def keep_stale(self, server_round: int, late: list[Update]) -> None:
        """Keep the accepted late updates of `server_round` (straggler-policy stale) for the next aggregated
        round: each float array's change from this round's global model, and its weight times stale-weight."""
        reference = {key: array.numpy() for key, array in self.global_arrays.items()}
        for update in late:
            self.stale_updates.append({
                "round": server_round, "partition": update.partition,
                "weight": update.weight * self.network.stale_weight,
                "change": {key: value - reference[key] for key, value in update.arrays.items()
                           if np.issubdtype(value.dtype, np.floating)}})

    def take_stale(self, server_round: int, current: Mapping[str, np.ndarray]) -> list[tuple[dict, float]]:
        """The stale updates of earlier rounds as (arrays, weight) on the `current` global model (their kept
        change added to it), removed from the store; the round's updates_stale counts them."""
        due = [s for s in self.stale_updates if s["round"] < server_round]
        self.stale_updates = [s for s in self.stale_updates if s["round"] >= server_round]
        self.round_stats[server_round]["updates_stale"] = len(due)
        return [({key: (current[key] + np.asarray(change)).astype(current[key].dtype)
                  for key, change in s["change"].items()}, s["weight"]) for s in due]

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        accepted = self.collect_replies(server_round, replies)
        if accepted is None:
            return None, None
        current = {key: array.numpy() for key, array in self.global_arrays.items()}
        stale = self.take_stale(server_round, current) if self.network is not None and self.network.keeps_late else []
        aggregated = keyed_aggregate([(u.arrays, u.weight) for u in accepted] + stale, current, self.aggregation,
                                     self.rule_params)
        self.accepted_hook(server_round, accepted)
        return ArrayRecord({key: Array(value) for key, value in aggregated.items()}), self.round_metrics(server_round, accepted)

    def accepted_hook(self, server_round: int, accepted: list[Update]) -> None:
        """What a subclass does with the round's accepted updates besides aggregating their arrays."""

    def collect_replies(self, server_round: int, replies: Iterable[Message]) -> list[Update] | None:
        """The accepted updates in partition order (None when the round is skipped); records replies,
        failures, rejections, bytes and each accepted client's metrics."""
        stats = self.round_stats[server_round]
        valid = []
        for msg in replies:
            if msg.has_error():
                log.warning("round %d: node %s failed: %s", server_round, msg.metadata.src_node_id, msg.error.reason)
            else:
                valid.append(msg)
        asked = len(self.sampled.get(server_round, ()))  # sampled users with a budget (all without a network)
        stats["clients_replied"], stats["clients_failed"] = len(valid), max(0, asked - len(valid))
        stats["bytes_received"] = sum(record_nbytes(m.content[self.arrayrecord_key]) for m in valid
                                      if isinstance(m.content.get(self.arrayrecord_key), ArrayRecord))
        valid, late = self.drop_late(server_round, valid)
        judged = self.judge(server_round, valid + late)
        stats["updates_rejected"] = len(valid) + len(late) - len(judged)
        late_partitions = {self.partition_of.get(m.metadata.src_node_id) for m in late}
        accepted = [u for u in judged if u.partition not in late_partitions]
        self.keep_stale(server_round, [u for u in judged if u.partition in late_partitions])
        stats["skipped"] = int(len(accepted) < self.min_replies)
        if stats["skipped"]:
            log.warning("round %d skipped: %d accepted updates, min-replies is %d (%d clients failed, %d rejected)",
                        server_round, len(accepted), self.min_replies, stats["clients_failed"], stats["updates_rejected"])
            return None
        self.client_metrics[server_round] = {u.partition: {**u.metrics, protocol.PARTITION_ID: u.partition,
                                                           self.weighted_by_key: u.weight} for u in accepted}
        self.client_diagnostics[server_round] = {
            u.partition: {k: v for k, v in u.msg.content[protocol.LABEL_DIAGNOSTICS].items() if isinstance(v, int) and v >= 0}
            for u in accepted if isinstance(u.msg.content.get(protocol.LABEL_DIAGNOSTICS), MetricRecord)}
        return accepted

    def round_metrics(self, server_round: int, accepted: list[Update]) -> MetricRecord:
        """Clients' numeric metrics averaged, weighted by their capped examples (as Flower's
        aggregate_metricrecords sums them), also kept in round_stats."""
        total = sum(u.weight for u in accepted)
        metrics: dict[str, float] = {}
        for u in accepted:
            factor = u.weight / total
            for key, value in u.metrics.items():
                metrics[key] = metrics[key] + value * factor if key in metrics else value * factor
        self.round_stats[server_round].update(metrics)
        return MetricRecord(metrics)
