"""Which Flower node is which user: the server asks every node for its partition id once, at the start
(a QUERY message; clients/app.py answers from its node config), and from then on maps replies by node id."""

from __future__ import annotations

import logging
import time

from flwr.app import Message, MessageType, RecordDict
from flwr.serverapp import Grid

from semfed import protocol
from semfed.update_validation import is_number

NODE_WAIT_S = 120
log = logging.getLogger("semfed.server")


def wait_for_nodes(grid: Grid, expected: int, key: str = "clients", what: str = "client profiles") -> None:
    """Block until `expected` nodes are connected; fail clearly when there are more or too few."""
    deadline = time.monotonic() + NODE_WAIT_S
    while (count := len(list(grid.get_node_ids()))) < expected and time.monotonic() < deadline:
        time.sleep(1)
    if count != expected:
        raise RuntimeError(f"{count} nodes connected but '{key}' lists {expected} {what}: "
                           f"set num-supernodes (or start SuperNodes) to match")


def discover_partitions(grid: Grid, expected: int, timeout_s: float, key: str = "clients",
                        what: str = "client profiles") -> dict[int, int]:
    """partition id -> node id: wait for the nodes, ask each for its partition-id (a query message: the
    first message a node gets, so it may take up to timeout_s, the round timeout, while the app loads) and
    check that they are exactly 0..expected-1, each once. A node that does not answer, or answers a bad
    or taken id, stops the run before round 1 (a misconfigured or impostor node: which of two nodes
    claiming one id is the user cannot be told)."""
    wait_for_nodes(grid, expected, key, what)
    nodes = sorted(grid.get_node_ids())
    start = time.monotonic()
    log.info("asking %d nodes for their partition ids", len(nodes))
    replies = grid.send_and_receive([Message(RecordDict(), dst_node_id=node, message_type=MessageType.QUERY)
                                     for node in nodes], timeout=timeout_s)
    found: dict[int, int] = {}
    for reply in replies:
        node = reply.metadata.src_node_id
        if reply.has_error():
            raise RuntimeError(f"node {node} did not identify itself: {reply.error.reason}")
        metrics = reply.content.get("metrics")
        pid = metrics.get(protocol.PARTITION_ID) if hasattr(metrics, "get") else None
        if not (is_number(pid) and pid == int(pid) and 0 <= pid < expected):
            raise RuntimeError(f"node {node} answers partition-id {pid!r}; '{key}' needs an integer in 0..{expected - 1}")
        if int(pid) in found:
            raise RuntimeError(f"nodes {found[int(pid)]} and {node} both answer partition-id {int(pid)}")
        found[int(pid)] = node
    silent = sorted(set(nodes) - set(found.values()))
    if silent:
        raise RuntimeError(f"nodes {silent} did not answer the partition-id query within {timeout_s:g} s")
    if sorted(found) != list(range(expected)):
        raise RuntimeError(f"nodes report partition ids {sorted(found)}; '{key}' needs exactly 0..{expected - 1}")
    log.info("%d nodes identified in %.1f s", len(found), time.monotonic() - start)
    return found
