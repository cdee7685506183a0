"""Through a broker that takes only SASL_SSL and a Redis with an ACL user: the pipeline decides as it does in the
clear; clients without the credentials, with a wrong password or without the CA are refused; no password is
printed."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis
from aiokafka import AIOKafkaProducer

from deploy import stack as local_stack
from deploy.acls import apply_permissions, service_permissions
from deploy.config import Settings
from deploy.credentials import SERVICE_USER, make_compose_secrets
from deploy.topics import create_topics
from deploy.workers import WorkerProcess
from streams.kafka_io import read_to_end
from streams.kafka_security import KafkaSecurity, client_options
from tests.integration.harness import free_port
from tests.integration.scenario import refund_scam_tiers


@pytest.fixture
def secured(stack: Settings, tmp_path: Path, small_model: Path) -> Iterator[Settings]:
    """A stack of its own: a KRaft broker with only a SASL_SSL listener (PLAIN and SCRAM users, a local CA) and
    a Redis whose default user is off."""
    data, kafka_port, redis_port = tmp_path / "data", free_port(), free_port()
    settings = dataclasses.replace(
        stack, data_dir=data, kafka_port=kafka_port, kafka_controller_port=kafka_port + 1,
        kafka_bootstrap=f"127.0.0.1:{kafka_port}", kafka_external=False, redis_port=redis_port,
        redis_url=f"redis://127.0.0.1:{redis_port}/0", redis_external=False, web_port=free_port(),
        kafka_security=KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "yujing-app", secrets.token_urlsafe(16),
                                     cafile=str(data / "tls" / "ca.pem")),
        redis_username="yujing-app", redis_password=secrets.token_urlsafe(16), signal_partitions=2, partitions=2)
    try:
        local_stack.up(settings)
        create_topics(settings)
        shutil.copytree(small_model, data / "model")
        yield settings
    finally:
        local_stack.down(settings)


def _refused(settings: Settings, security: KafkaSecurity) -> str:
    """Why a producer with these settings could not send ('' when it could)."""
    async def attempt() -> str:
        producer = AIOKafkaProducer(**client_options(dataclasses.replace(settings, kafka_security=security)),
                                    request_timeout_ms=5000)
        try:
            await asyncio.wait_for(producer.start(), 20)
            await asyncio.wait_for(producer.send_and_wait(settings.topic("signals.telecom"), b"{}"), 20)
            return ""
        except Exception as exc:  # noqa: BLE001  (whatever the client raises, the point is that it raised)
            return f"{type(exc).__name__}: {exc}"
        finally:
            await asyncio.wait_for(producer.stop(), 10)
    return asyncio.run(attempt())


def test_the_pipeline_works_through_sasl_ssl_and_a_redis_acl_and_nobody_else_gets_in(secured: Settings,
                                                                                   tmp_path: Path) -> None:
    security = secured.kafka_security
    worker = WorkerProcess(secured, tmp_path / "worker.log")
    assert refund_scam_tiers(secured, worker)[-1:] == ["T1"], worker.log_tail()
    assert local_stack.redis_answers(secured.redis_url, **secured.redis_options())
    assert not local_stack.redis_answers(secured.redis_url)  # the default user is off
    assert not local_stack.redis_answers(secured.redis_url, username=secured.redis_username, password="wrong")
    client = redis.Redis.from_url(secured.redis_url, **secured.redis_options())
    for dangerous in (("FLUSHALL",), ("CONFIG", "SET", "appendonly", "no"), ("KEYS", "*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*dangerous)
    client.close()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert secured.redis_password not in ps  # the ACL is in a file, not on Redis's command line

    assert _refused(secured, dataclasses.replace(security, mechanism="PLAIN")) == ""  # PLAIN works too
    assert "Unable to bootstrap" in _refused(secured, dataclasses.replace(security, password="wrong"))
    assert "Unable to bootstrap" in _refused(secured, KafkaSecurity())  # plaintext
    assert "Unable to bootstrap" in _refused(secured, dataclasses.replace(security, cafile=""))  # unknown CA

    status = subprocess.run([sys.executable, "-m", "deploy.cli", "stack", "status"], capture_output=True, text=True,
                            env={**os.environ, **secured.to_env(), "YUJING_KAFKA_PORT": str(secured.kafka_port),
                                 "YUJING_REDIS_PORT": str(secured.redis_port)}, check=True)
    log = (tmp_path / "worker.log").read_text()
    for secret in (security.password, secured.redis_password):
        assert secret not in status.stdout + status.stderr and secret not in log
    assert status.stdout.count(" answering") == 2, status.stdout


def test_the_compose_secrets_let_the_service_user_into_redis_and_nobody_else(tmp_path: Path) -> None:
    made = {p.name: p for p in make_compose_secrets(tmp_path / "secrets")}
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--aclfile", str(made["redis_users.acl"])], stdout=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        password = made["redis_password"].read_text().strip()
        deadline = time.monotonic() + 20
        while not local_stack.redis_answers(url, username=SERVICE_USER, password=password):
            assert time.monotonic() < deadline and server.poll() is None, "redis-server did not take the ACL file"
            time.sleep(0.2)
        assert not local_stack.redis_answers(url)
        assert not local_stack.redis_answers(url, username=SERVICE_USER, password="x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            redis.Redis.from_url(url, username=SERVICE_USER, password=password).flushall()
    finally:
        server.terminate()
        server.wait(10)
    broker = dict(line.split("=", 1) for line in made["kafka_broker.secrets"].read_text().splitlines())
    assert f'user_{SERVICE_USER}="{made["kafka_password"].read_text().strip()}"' in broker["plain.jaas"]
    assert "ENCRYPTED PRIVATE KEY" in made["server.pem"].read_text() and broker["ssl.key.password"]


def _scram_user(settings: Settings, name: str) -> Settings:
    """A SCRAM-SHA-512 user made on the broker (by the settings' super user); settings that connect as it."""
    from kafka import KafkaAdminClient
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    password = secrets.token_urlsafe(16)
    admin = KafkaAdminClient(**client_options(settings))
    try:
        made = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(name, ScramMechanism.SCRAM_SHA_512,
                                                                                 password)])
    finally:
        admin.close()
    assert not any(made.values()), made
    security = dataclasses.replace(settings.kafka_security, username=name, password=password)
    return dataclasses.replace(settings, kafka_security=security)


def _sends(settings: Settings, logical: str) -> str:
    """Why a producer of these settings could not write to the topic ('' when it could)."""
    async def attempt() -> str:
        producer = AIOKafkaProducer(**client_options(settings), request_timeout_ms=5000)
        await asyncio.wait_for(producer.start(), 20)
        try:
            await asyncio.wait_for(producer.send_and_wait(settings.topic(logical), b"{}", key=b"k"), 20)
            return ""
        except Exception as exc:  # noqa: BLE001  (the refusal is the result)
            return type(exc).__name__
        finally:
            await asyncio.wait_for(producer.stop(), 10)
    return asyncio.run(attempt())


def test_each_service_may_do_only_what_its_acls_allow(secured: Settings, tmp_path: Path) -> None:
    """With ACLs per service on a broker that authorizes: the worker as its own user takes the refund scam to T1;
    it may read its outputs (the console's explain); without ACLs a worker stops at its start; the SMS adapter's
    user may write receipts but may not erase a person, block a domain or forge a signal; a provider may write
    its own topic only; a user without ACLs may do nothing."""
    worker_user, sms_user = _scram_user(secured, "svc-worker"), _scram_user(secured, "svc-sms")
    telecom, nobody = _scram_user(secured, "svc-telecom"), _scram_user(secured, "svc-nobody")
    for service, user in (("worker", worker_user), ("sms-gateway", sms_user), ("signals.telecom-writer", telecom)):
        assert apply_permissions(secured, f"User:{user.kafka_security.username}",
                                 service_permissions(secured, service)) > 0
    worker = WorkerProcess(worker_user, tmp_path / "worker.log")
    assert refund_scam_tiers(secured, worker)[-1:] == ["T1"], worker.log_tail()  # fed by the super user
    assert read_to_end(worker_user, worker_user.topic("warnings"))  # what its explain page reads
    with pytest.raises(RuntimeError, match="Authorization"):  # without ACLs it does not get past its start
        WorkerProcess(nobody, tmp_path / "nobody.log").start(ready_timeout=90)

    assert _sends(sms_user, "outcomes") == "" and _sends(sms_user, "deadletter") == ""
    for topic in ("registry.subjects", "intel.indicators", "signals.telecom", "warnings"):
        assert _sends(sms_user, topic) == "TopicAuthorizationFailedError", topic
    assert _sends(telecom, "signals.telecom") == ""
    assert _sends(telecom, "signals.payment") == "TopicAuthorizationFailedError"
    assert _sends(nobody, "signals.telecom") == "TopicAuthorizationFailedError"
