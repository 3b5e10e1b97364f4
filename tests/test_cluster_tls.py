"""The deployment engine for real: a TLS + SuperNode-auth cluster of local processes
(scripts/local_cluster.sh) that survives a SuperNode killed mid-run. Its own file so that pytest-xdist
starts it early, beside the rest of the suite: it mostly waits (a heartbeat expiry, per-message ClientApp
processes)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.flower_runs import ROOT, TINY, share_caches, worker_port


def own_process_group(marker: str, *words: str) -> int:
    """The process group of the one process whose command line holds `marker` (a path under this
    test's tmp_path, so never another user's process) and every word in `words`; local_cluster.sh
    starts each process with setsid, so its pid is its group id."""
    found = [p for p in psutil.process_iter(["pid", "cmdline"])
             if marker in (line := " ".join(p.info["cmdline"] or [])) and all(w in line for w in words)]
    assert len(found) == 1, [" ".join(p.info["cmdline"]) for p in found]
    pid = found[0].info["pid"]
    assert os.getpgid(pid) == pid
    return pid


def recorded_rounds(metrics: Path) -> list[int]:
    try:
        return pd.read_csv(metrics)["round"].tolist()
    except (FileNotFoundError, pd.errors.EmptyDataError, KeyError):  # not written yet, or caught mid-write
        return []


@pytest.mark.slow
def test_local_multi_process_cluster_with_tls_survives_a_killed_supernode(tmp_path):
    """A real TLS + SuperNode-auth cluster (scripts/local_cluster.sh: SuperLink, 3 SuperNodes, their
    executors as local processes) runs 3 rounds with min-replies=2. As soon as round 1's row is in
    metrics.csv, the test SIGKILLs SuperNode 2 and its ClientApp executor (their process groups, so
    a running flwr-clientapp too): the node disappears without deactivating itself. Round 2 has
    usually been sampled by then (it starts right after round 1's row), and the node still counts as
    online either way: the SuperLink marks a node offline only when its heartbeat is overdue
    (online_until = last heartbeat + 2 x 30 s). Once it is, the SuperLink answers the message still
    waiting for that node with a NODE_UNAVAILABLE error reply, so round 2 ends with 2 replies and 1
    failure (aggregated: 2 >= min-replies) well before round-timeout-s; round 3 samples only the 2
    online nodes. What this does not test: a kill while a ClientApp is training (tiny rounds leave
    no reliable window for that; the outcome would be the same missing reply) and round-timeout-s
    expiring (a backstop here)."""
    certs, cluster, work = tmp_path / "certs", tmp_path / "cluster", tmp_path / "work"
    subprocess.run([sys.executable, str(ROOT / "scripts/generate_certs.py"), "--dir", str(certs), "--supernodes", "3"],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    port, out = worker_port(39540), tmp_path / "local_cluster.out"
    work.mkdir()
    share_caches(work)
    metrics = work / "runs" / "cluster" / "metrics.csv"
    started = time.monotonic()
    with open(out, "w") as log:
        script = subprocess.Popen(
            ["bash", str(ROOT / "scripts/local_cluster.sh"), "--nodes", "3", "--port", str(port), "--certs", str(certs),
             "--dir", str(cluster), f"work-dir='{work}' run-name='cluster' num-server-rounds=3 min-replies=2 "
                                    f"round-timeout-s=300 {TINY}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while 1 not in recorded_rounds(metrics):
            assert script.poll() is None, out.read_text()[-3000:]
            assert time.monotonic() - started < 900, "round 1 not recorded after 900 s"
            time.sleep(0.5)
        node = own_process_group(str(certs / "supernode-2.key"), "flower-supernode")
        executor = own_process_group(str(certs / "ca.crt"), "flower-superexec", f"127.0.0.1:{port + 3}")
        for group in (node, executor):
            os.killpg(group, signal.SIGKILL)
        killed_at = time.monotonic()
        returncode = script.wait(timeout=900)  # the run must not hang
    finally:
        if script.poll() is None:  # its EXIT trap stops the processes it started
            os.killpg(script.pid, signal.SIGTERM)
            script.wait(60)
    output = out.read_text()
    print(f"round 1 recorded after {killed_at - started:.0f} s, the run ended {time.monotonic() - killed_at:.0f} s "
          f"after the kill")
    assert returncode == 0, output[-3000:]
    assert "TLS + SuperNode auth" in output and "finished:completed" in output
    table = pd.read_csv(metrics).set_index("round")
    assert table.index.tolist() == [0, 1, 2, 3]
    assert (table["rsum"] > 0).all()  # finite and not a diverged model (which scores 0, semfed.retrieval.metrics)
    counts = table.loc[1:, ["clients_replied", "clients_failed", "updates_rejected", "skipped"]]
    assert counts.values.tolist() == [[3, 0, 0, 0],  # all 3 nodes
                                      [2, 1, 0, 0],  # node 2 sampled, killed: NODE_UNAVAILABLE; aggregated
                                      [2, 1, 0, 0]]  # node 2 offline: still drawn, a failed client
    # bytes_sent = messages sent x model size: 3 in rounds 1 and 2; in round 3 none to the offline node 2
    assert table.loc[2, "bytes_sent"] == table.loc[1, "bytes_sent"] == table.loc[3, "bytes_sent"] * 3 / 2
    assert "Error: Node Unavailable" in output  # the SuperLink's error reply, logged by the strategy
    assert table.loc[2, "seconds"] < 300  # it came before round-timeout-s
    for i in range(3):  # each SuperNode authenticated with its own key, served its Runtime API over TLS
        assert "https://127.0.0.1:" in (cluster / f"supernode-{i}.log").read_text()
    # none of the processes the script started is left (each names a path under tmp_path: certs or cluster)
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
