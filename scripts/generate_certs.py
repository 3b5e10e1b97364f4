"""Make the TLS and SuperNode-authentication files a semfed cluster needs (docker-compose.yml and
scripts/local_cluster.sh), with Python's `cryptography` (a Flower dependency), into a git-ignored folder:

    ca.crt, ca.key           a self-signed CA that clients (`flwr` CLI, SuperNodes, executors) trust
    server.pem, server.key   the server certificate of the SuperLink and of every SuperNode's Runtime API,
                             signed by the CA, valid for localhost, 127.0.0.1, `superlink` and any --host
    supernode-<i>.key/.pub   one EC key pair (OpenSSH format) per SuperNode, for SuperNode authentication

    python scripts/generate_certs.py [--dir certs] [--supernodes 10] [--host NAME_OR_IP ...] [--force]

Private keys are created with mode 600 (never readable by others, not even for a moment). Files already
there are left alone unless --force replaces them (then every SuperNode must be registered again).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "superlink")
VALID_DAYS = 365


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "semfed"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Create `path` (it must not exist) with mode 600 for a private key, 644 otherwise."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def output_files(count: int) -> list[str]:
    """Every file this script writes for `count` SuperNodes."""
    return ["ca.key", "ca.crt", "server.key", "server.pem",
            *[f"supernode-{i}.{ext}" for i in range(count) for ext in ("key", "pub")]]


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def make_ca(out: Path, now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (x509.CertificateBuilder().subject_name(_name("semfed CA")).issuer_name(_name("semfed CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write(out / "ca.key", _pem_key(key), private=True)
    _write(out / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def make_server_cert(out: Path, ca_key, ca_cert: x509.Certificate, hosts: list[str], now: datetime.datetime) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write(out / "server.key", _pem_key(key), private=True)
    _write(out / "server.pem", cert.public_bytes(serialization.Encoding.PEM))


def make_supernode_keys(out: Path, count: int) -> None:
    """EC (P-384) key pairs in OpenSSH format, what `flower-supernode --auth-supernode-private-key`
    and `flwr supernode register` read."""
    for i in range(count):
        key = ec.generate_private_key(ec.SECP384R1())
        _write(out / f"supernode-{i}.key", key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.OpenSSH,
                                                             serialization.NoEncryption()), private=True)
        _write(out / f"supernode-{i}.pub", key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                                         serialization.PublicFormat.OpenSSH) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent.parent / "certs")
    parser.add_argument("--supernodes", type=int, default=10, help="SuperNode key pairs to make (default 10)")
    parser.add_argument("--host", action="append", default=[],
                        help="extra DNS name or IP the SuperLink is reached at (repeatable)")
    parser.add_argument("--force", action="store_true", help="replace files already in --dir")
    args = parser.parse_args()
    existing = [name for name in output_files(args.supernodes) if (args.dir / name).exists()]
    if existing and not args.force:
        parser.exit(1, f"generate_certs.py: {args.dir} already holds {', '.join(existing)}; not overwriting them "
                       "(pass --force to replace them, then register every SuperNode again)\n")
    for name in existing:
        (args.dir / name).unlink()
    args.dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)  # tolerate clock skew
    ca_key, ca_cert = make_ca(args.dir, now)
    hosts = list(dict.fromkeys([*DEFAULT_HOSTS, *args.host]))
    make_server_cert(args.dir, ca_key, ca_cert, hosts, now)
    make_supernode_keys(args.dir, args.supernodes)
    print(f"semfed: CA, server certificate ({', '.join(hosts)}) and {args.supernodes} SuperNode key pairs in {args.dir}")


if __name__ == "__main__":
    main()
