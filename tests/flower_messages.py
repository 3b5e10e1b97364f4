"""Real Flower Messages built in-process for strategy tests: replies from a given node, and the one Grid
call configure_train makes."""

import time

import pytest
from flwr.app import Error, Message, MessageType, Metadata, RecordDict


class Grid:
    """The one Grid call configure_train makes."""

    def __init__(self, connected):
        self.connected = list(connected)

    def get_node_ids(self):
        return self.connected


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """Instruction Messages read the ServerApp's identity (flwr 1.42 TaskIdentity), set here as a run would."""
    from flwr.supercore.task_identity import TaskIdentity

    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


def reply_from(node: int, content: RecordDict | Error) -> Message:
    """A reply Message as the Grid hands it to aggregate_train: from `node`."""
    metadata = Metadata(run_id=1, message_id="", src_node_id=node, dst_node_id=1, reply_to_message_id="m",
                        group_id="", created_at=time.time(), ttl=3600.0, message_type=MessageType.TRAIN)
    if isinstance(content, Error):
        return Message(error=content, metadata=metadata)
    return Message(content=content, metadata=metadata)
