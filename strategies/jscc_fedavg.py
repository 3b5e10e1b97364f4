"""Base of the D-JSCC framework strategies: KeyedFedAvg that sends each client the encoder and
its own decoder, and accepts back only the arrays the client's role may change."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from semfed import protocol
from semfed.jscc.federation import ENCODER, ENCODER_ROLES, decoder_prefix
from strategies.keyed_fedavg import KeyedFedAvg, record_nbytes


@dataclass(frozen=True)
class Assignment:
    """One client's job in one round: its partition id and role (semfed.jscc.federation.ROLES)."""

    partition: int
    role: str

    @property
    def trains_encoder(self) -> bool:
        return self.role in ENCODER_ROLES

    def sends(self, key: str) -> bool:
        """Whether the client receives array `key`: the encoder and its own decoder."""
        return key.startswith(ENCODER) or key.startswith(decoder_prefix(self.partition))

    def may_return(self, key: str) -> bool:
        """Whether the client may send array `key` back: its decoder, and the encoder if it trains it."""
        return key.startswith(decoder_prefix(self.partition)) or (self.trains_encoder and key.startswith(ENCODER))


class JSCCFedAvg(KeyedFedAvg):
    """A framework = `assign(server_round)`: which clients train and in which role.

    `nodes` maps partition id -> Flower node id (server.nodes.discover_partitions); a reply's role is
    that of its node's partition. Aggregation is KeyedFedAvg's: each key over the clients that returned it, every
    other key kept bit-identical. A reply holding a key its role may not change is rejected
    (KeyedFedAvg.accepted), so e.g. the anchor's frozen encoder cannot move on the server.
    """

    def __init__(self, nodes: dict[int, int], **kwargs):
        kwargs.setdefault("fraction_evaluate", 0.0)
        super().__init__(nodes=nodes, **kwargs)
        self.assignments: dict[int, list[Assignment]] = {}

    def assign(self, server_round: int) -> list[Assignment]:
        raise NotImplementedError

    def phase(self, server_round: int) -> str:
        """The name of the training phase server_round belongs to (semfed.jscc.plateau)."""
        return "training"

    def cycle_rounds(self) -> int:
        """Rounds in which every training client has had its turn: the plateau rule scores a phase once per
        cycle, on the mean of its rounds (1: every round)."""
        return 1

    def scored_partitions(self, server_round: int) -> list[int]:
        """The clients whose decoders score the phase of server_round for the plateau rule: all of them."""
        return sorted(self.nodes)

    def end_phase(self, server_round: int) -> bool:
        """End the phase of server_round after that round (it plateaued); True if another phase follows."""
        return False

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.global_arrays = arrays
        tasks = self.assignments[server_round] = self.assign(server_round)
        role = {task.partition: task for task in tasks}
        messages = self.train_messages(
            server_round, [task.partition for task in tasks],
            lambda pid: ArrayRecord({key: array for key, array in arrays.items() if role[pid].sends(key)}),
            lambda pid: ConfigRecord({**config, protocol.SERVER_ROUND: server_round, protocol.JSCC_ROLE: role[pid].role}), grid)
        self.round_stats[server_round]["bytes_sent"] = sum(record_nbytes(m.content[self.arrayrecord_key])
                                                           for m in messages)
        return messages

    def may_change(self, server_round: int, partition: int) -> Callable[[str], bool]:
        """The client's role's keys (Assignment.may_return); nothing for a client not asked to train."""
        task = next((t for t in self.assignments[server_round] if t.partition == partition), None)
        return task.may_return if task is not None else (lambda key: False)
