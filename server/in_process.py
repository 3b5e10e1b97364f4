"""A whole semfed run in this one process: the real ServerApp and ClientApp, with a Grid that hands each
message to the ClientApp directly instead of through a SuperLink and Ray. Every message still goes through
Flower's wire format (protobuf) both ways, a ClientApp that raises answers an error reply as in a simulation,
and each node keeps its own Context between rounds. For stepping through a run in a debugger and for the
test suite, where a `flwr run`'s start-up (SuperLink, Ray, one interpreter per actor) costs more than the
run; what only a real run shows (ports, processes, timeouts, isolation) stays with `flwr run`.

    python -m server.in_process "num-server-rounds=2 scenes-train=48"
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
import traceback
from collections.abc import Iterable

from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

RUN_ID = 1
SUPERLINK_NODE_ID = 1


def over_the_wire(message: Message) -> Message:
    """`message` serialised to Flower's protobuf and read back, as a SuperLink would carry it."""
    return message_from_proto(message_to_proto(message))


class InProcessGrid(Grid):
    """A Grid whose nodes are ClientApp calls in this process, one after another, in the order pushed.
    Node ids are random 63-bit integers from `seed` (as Flower's are), so that code cannot confuse them
    with partition ids; node k has node config partition-id=k, num-partitions=len(nodes)."""

    def __init__(self, client_app, num_nodes: int, run_config: dict, seed: int = 0) -> None:
        self.client_app = client_app
        ids = random.Random(seed).sample(range(2, 2**63), num_nodes)
        self.contexts = {node: Context(run_id=RUN_ID, node_id=node, node_config={"partition-id": k, "num-partitions": num_nodes},
                                       state=RecordDict(), run_config=dict(run_config)) for k, node in enumerate(ids)}
        self.replies: dict[str, Message] = {}  # by message id, until pulled
        self.message_ids = itertools.count()
        self._run = Run.create_empty(RUN_ID)

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Run the ClientApp on each message now; keep the reply (an error reply if the app raised)."""
        ids = []
        for message in messages:
            message.metadata.__dict__["_run_id"] = RUN_ID
            message.metadata.__dict__["_src_node_id"] = SUPERLINK_NODE_ID
            message.metadata.__dict__["_message_id"] = message_id = str(next(self.message_ids))
            received = over_the_wire(message)
            context = self.contexts.get(received.metadata.dst_node_id)
            if context is None:
                raise ValueError(f"no node {received.metadata.dst_node_id}")
            TaskIdentity.node_id = context.node_id  # whose process this is, while the ClientApp runs
            try:
                reply = self.client_app(received, context)
            except Exception as error:  # reported as an error reply, as the simulation engine does
                traceback.print_exc()
                reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                      reason=f"{type(error)}:<'{error}'>"), reply_to=received)
            finally:
                TaskIdentity.node_id = SUPERLINK_NODE_ID
            self.replies[message_id] = over_the_wire(reply)
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self.replies.pop(i) for i in message_ids if i in self.replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


def run_in_process(overrides: dict, num_nodes: int | None = None, seed: int = 0) -> None:
    """Run semfed with pyproject's defaults and `overrides` (parsed run-config values) on `num_nodes` nodes
    (default: the SuperNodes the config needs). Raises what the ServerApp raises."""
    from clients.app import app as client_app
    from semfed.config import from_overrides
    from server.app import app as server_app

    cfg = from_overrides(overrides)
    run_config = cfg.to_run_config()
    grid = InProcessGrid(client_app, num_nodes or cfg.supernodes, run_config, seed)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN_ID, SUPERLINK_NODE_ID
    server_app(grid, Context(run_id=RUN_ID, node_id=SUPERLINK_NODE_ID, node_config={}, state=RecordDict(),
                             run_config=run_config))


def main(argv: list[str]) -> int:
    from flwr.common.config import parse_config_args

    parser = argparse.ArgumentParser(prog="python -m server.in_process", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="run-config overrides, as flwr run --run-config takes them")
    overrides = parser.parse_args(argv).overrides
    start = time.perf_counter()
    run_in_process(parse_config_args([text for text in overrides if text] or None))
    print(f"semfed: in-process run finished in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
