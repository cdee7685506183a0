"""Credentials files made with openssl: a CA and a broker certificate for 127.0.0.1 (the local stack), and the
secrets folder the compose file mounts (`yujing stack secrets`)."""
from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
from pathlib import Path

SERVICE_USER = "yujing"  # the one Kafka and Redis user the compose services connect as


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read, from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class CredentialsError(RuntimeError):
    """openssl failed to make a key or a certificate."""


def make_tls(folder: Path, hosts: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost")) -> tuple[Path, str]:
    """A CA (`ca.pem`) and a broker key and certificate for `hosts` signed by it, as a PEM keystore
    (`server.pem`, key encrypted); made once. Returns the keystore and its key's password."""
    keystore, password_file = folder / "server.pem", folder / "server.key-password"
    if keystore.exists() and password_file.exists():
        return keystore, password_file.read_text().strip()
    folder.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    (folder / "san.ext").write_text(f"subjectAltName={','.join(hosts)}\nbasicConstraints=CA:FALSE\n"
                                    "extendedKeyUsage=serverAuth\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650",
         "-subj", "/CN=yujing CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", f"/CN={hosts[0].split(':', 1)[1]}"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.crt", "-days", "825", "-extfile", "san.ext"],
        # PBE v1: the JDK 17 a broker runs on reads no PBES2-encrypted PEM key
        ["pkcs8", "-topk8", "-in", "server.key", "-out", "server-key.pem", "-v1", "PBE-SHA1-3DES",
         "-passout", f"pass:{password}"],
    ]
    for step in steps:
        res = subprocess.run(["openssl", *step], cwd=folder, capture_output=True, text=True)
        if res.returncode != 0:
            raise CredentialsError(f"openssl {step[0]} failed:\n{res.stderr}")
    _write_private(keystore, (folder / "server-key.pem").read_text() + (folder / "server.crt").read_text())
    for name in ("ca.key", "server.key", "server-key.pem", "server.csr", "san.ext", "ca.srl", "server.crt"):
        (folder / name).unlink(missing_ok=True)
    _write_private(password_file, password + "\n")
    return keystore, password


def plain_jaas(user: str, password: str) -> str:
    """A broker's PLAIN login line: the broker's own login to itself and the one user it knows, both as `user`."""
    return (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{user}" '
            f'password="{password}" user_{user}="{password}";')


def redis_acl(username: str, password: str) -> str:
    """A Redis ACL file: the service user (or, without a name, the default user) with its password, every key and
    channel, and every command but the dangerous ones (CONFIG, FLUSHALL, KEYS, DEBUG, SHUTDOWN, ACL, …); without
    a name of its own, the default user is off."""
    rights = f"on #{hashlib.sha256(password.encode()).hexdigest()} ~* &* +@all -@dangerous"  # the hash: any password
    if not username or username == "default":
        return f"user default {rights}\n"
    return f"user default off\nuser {username} {rights}\n"


def write_redis_acl(path: Path, username: str, password: str) -> Path:
    """`redis_acl` written to a file only its owner may read (the password stays off command lines)."""
    _write_private(path, redis_acl(username, password))
    return path


def make_compose_secrets(folder: Path) -> list[Path]:
    """The files `deploy/compose/docker-compose.yml` mounts as secrets: the broker's keystore and its secrets
    (key password, the PLAIN user), the CA, the service user's Kafka and Redis passwords, the Redis ACL file and
    Grafana's admin password. Existing files are kept (so are the passwords in them)."""
    keystore, key_password = make_tls(folder, ("DNS:kafka", "DNS:localhost", "IP:127.0.0.1"))
    made: list[Path] = [keystore, folder / "ca.pem"]

    def secret(name: str) -> str:
        path = folder / name
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(24) + "\n")
        made.append(path)
        return path.read_text().strip()

    kafka_password, redis_password = secret("kafka_password"), secret("redis_password")
    secret("grafana_admin_password")
    if not (folder / "sms_secret").exists():  # the provider issues it: empty until the operator puts it here,
        _write_private(folder / "sms_secret", "")  # and the SMS adapter refuses to start meanwhile
    made.append(folder / "sms_secret")
    jaas = plain_jaas(SERVICE_USER, kafka_password)
    files = {"kafka_broker.secrets": f"ssl.key.password={key_password}\nplain.jaas={jaas}\n",
             "redis_users.acl": redis_acl(SERVICE_USER, redis_password)}
    for name, text in files.items():
        _write_private(folder / name, text)
        made.append(folder / name)
    return made
