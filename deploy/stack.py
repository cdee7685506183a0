"""The embedded local stack: Apache Kafka (KRaft, from Maven Central) and Redis (AOF), on 127.0.0.1 only."""
from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from deploy.config import PROJECT_ROOT, Settings, kafka_node_ports, redis_node_ports
from deploy.credentials import CredentialsError, make_tls, plain_jaas, write_redis_acl
from streams.kafka_security import Secured, client_options

T = TypeVar("T")
KAFKA_VERSION = "4.1.1"
KAFKA_POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"
KAFKA_LOG4J = PROJECT_ROOT / "deploy" / "kafka" / "log4j2.properties"


class StackError(RuntimeError):
    """A component could not be installed, started or reached; the message says which and why."""


@dataclass(frozen=True)
class Status:
    """What one component is doing: who runs it, where, and whether it answers."""

    name: str
    address: str
    managed: bool
    pid: int | None
    answering: bool
    nodes: int = 1  # a cluster's row: its nodes have rows of their own

    def line(self) -> str:
        """One human-readable status line."""
        who = f"pid {self.pid}" if self.pid else ("external" if not self.managed else "not running")
        if self.managed and self.nodes > 1:
            who = f"{self.nodes} nodes"
        state = "answering" if self.answering else "NOT answering"
        return f"{self.name:<6} {self.address:<28} {who:<14} {state}"


# ----------------------------------------------------------------------------- processes


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.data_dir / "run" / f"{name}.pid"


def _read_pid(settings: Settings, name: str) -> int | None:
    """The pid `up` recorded, if that process still runs and is still ours (cmdline names our data dir)."""
    path = _pid_file(settings, name)
    try:
        pid = int(path.read_text().strip())
        cwd = os.readlink(f"/proc/{pid}/cwd")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    # A recycled pid belongs to someone else: only a live process working inside our data folder is ours
    # (servers are started with cwd there; redis rewrites its command line, so cwd is the reliable mark).
    ours = cwd == str(settings.data_dir) or cwd.startswith(str(settings.data_dir) + os.sep)
    return pid if ours and state != "Z" else None


def _spawn(settings: Settings, name: str, argv: list[str], ports: tuple[int, ...]) -> int:
    """Start a server detached from this process (it outlives the CLI), logging under DATA/logs."""
    for port in ports:
        if _reachable(f"127.0.0.1:{port}", 1.0):
            raise StackError(f"{name}: 127.0.0.1:{port} is already in use by a server this data folder did not "
                             f"start; stop it, choose another port (YUJING_*_PORT), or point "
                             f"KAFKA_BOOTSTRAP / REDIS_URL at it to use it as an external server")
    (settings.data_dir / "run").mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "logs").mkdir(parents=True, exist_ok=True)
    log = open(settings.data_dir / "logs" / f"{name}.log", "ab")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=settings.data_dir,
    )
    log.close()
    _pid_file(settings, name).write_text(f"{proc.pid}\n")
    return proc.pid


def _stop_pid(pid: int, timeout: float = 30.0, crash: bool = False) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within the timeout (`crash`: SIGKILL at once);
    returns once it is gone.

    Gone, not just signalled: a server started again on the same port right after must not find it bound.
    """
    steps = ((signal.SIGTERM, timeout), (signal.SIGKILL, 30.0))
    for sig, wait_s in steps[1:] if crash else steps:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our child, and it has exited
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _wait_until(check: Callable[[], bool], timeout: float, what: str, pid: int | None, log: Path) -> None:
    """Wait until `check` passes; fail early, with the log's tail, if our process `pid` has died."""
    deadline = time.monotonic() + timeout
    problem = f"did not answer within {timeout:.0f}s"
    while time.monotonic() < deadline:
        if pid is not None and not _alive(pid):
            problem = "exited (a port in use by another server is the usual cause)"
            break
        if check():
            return
        time.sleep(0.3)
    tail = ""
    if log.exists():
        tail = f"\n--- last lines of {log} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise StackError(f"{what} {problem}{tail}")


# ----------------------------------------------------------------------------- Kafka


def kafka_libs(settings: Settings) -> Path:
    """The folder of the broker's jars, fetched from Maven Central on first use."""
    return settings.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"


def install_kafka(settings: Settings) -> Path:
    """Fetch Apache Kafka's jars with Maven (strict checksums) unless they are already cached."""
    libs = kafka_libs(settings)
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if not mvn or not shutil.which("java"):
        raise StackError("Apache Kafka needs Java 17+ and Maven: run scripts/bootstrap.sh (apt-get install openjdk-17-jre-headless maven)")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-C", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not (tmp / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        raise StackError(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central failed:\n{res.stdout}\n{res.stderr}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    (libs / ".complete").write_text(KAFKA_VERSION + "\n")
    return libs


@dataclass(frozen=True)
class Node:
    """One server process of the local stack: its name (pid file and log), folder, and ports."""

    name: str
    node_id: int
    port: int
    second_port: int  # Kafka: its controller's; Redis Cluster: its bus (0: none)
    folder: Path


def kafka_nodes(settings: Settings) -> list[Node]:
    """The local KRaft nodes: `kafka` alone, or `kafka-1`…`kafka-3`, each with its folder under the data dir."""
    ports = kafka_node_ports(settings.kafka_port, settings.kafka_controller_port, settings.kafka_brokers)
    if len(ports) == 1:
        return [Node("kafka", 1, *ports[0], settings.data_dir / "kafka")]
    return [Node(f"kafka-{i}", i, port, cport, settings.data_dir / f"kafka-{i}")
            for i, (port, cport) in enumerate(ports, start=1)]


def _kafka_properties(settings: Settings, node: Node, nodes: list[Node]) -> Path:
    kdir = node.folder
    props = kdir / "server.properties"
    kdir.mkdir(parents=True, exist_ok=True)
    port, cport = node.port, node.second_port
    protocol = settings.kafka_security.protocol
    # Three nodes: every record on three, and a write acknowledged (acks=all) only once two have it, so one node
    # may die without losing an acknowledged record or stopping the writes.
    replicas, in_sync = (3, 2) if len(nodes) >= 3 else (1, 1)
    props.write_text(
        "\n".join([
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            "controller.quorum.voters=" + ",".join(f"{n.node_id}@127.0.0.1:{n.second_port}" for n in nodes),
            f"listeners={protocol}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            f"advertised.listeners={protocol}://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            f"inter.broker.listener.name={protocol}",
            # with SASL the controller's listener asks for the same user (else anyone on the host could reach it)
            f"listener.security.protocol.map={protocol}:{protocol},"
            f"CONTROLLER:{'SASL_PLAINTEXT' if settings.kafka_security.sasl else 'PLAINTEXT'}",
            *_kafka_security_properties(settings),
            f"log.dirs={kdir / 'logs'}",
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={in_sync}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={in_sync}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "num.partitions=8",
            "log.retention.hours=168",
            "",
        ])
    )
    return props


def _kafka_security_properties(settings: Settings) -> list[str]:
    """The broker's TLS and SASL lines for the settings' protocol: the clients' user, by PLAIN and by SCRAM (its
    SCRAM credentials are written when the log dir is formatted), and a certificate from the local CA."""
    security = settings.kafka_security
    lines: list[str] = []
    if security.tls:
        keystore, key_password = local_tls(settings)
        lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={keystore}", f"ssl.key.password={key_password}",
                  "ssl.truststore.type=PEM", f"ssl.truststore.location={keystore.with_name('ca.pem')}"]
    if security.sasl:
        listener = security.protocol.lower()
        user, password = security.username, security.password
        lines += ["sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
                  "sasl.mechanism.inter.broker.protocol=PLAIN",
                  f"listener.name.{listener}.plain.sasl.jaas.config={plain_jaas(user, password)}",
                  *(f"listener.name.{listener}.{m}.sasl.jaas.config=org.apache.kafka.common.security.scram."
                    "ScramLoginModule required;" for m in ("scram-sha-256", "scram-sha-512")),
                  "sasl.mechanism.controller.protocol=PLAIN",
                  "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
                  f"listener.name.controller.plain.sasl.jaas.config={plain_jaas(user, password)}",
                  # Authorization: the settings' user may do anything (it creates topics and ACLs, and is the
                  # broker to its controller); other users only what ACLs allow (`yujing acls`)
                  "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                  f"super.users=User:{user}"]
    return lines


def local_tls(settings: Settings) -> tuple[Path, str]:
    """The local broker's PEM keystore and its key's password, under `DATA/tls` beside the CA the clients trust
    (`DATA/tls/ca.pem`, their KAFKA_SSL_CAFILE); made once."""
    try:
        return make_tls(settings.data_dir / "tls")
    except CredentialsError as exc:
        raise StackError(f"making the local TLS files: {exc}") from None


def _java_argv(settings: Settings, libs: Path, main: str, *args: str) -> list[str]:
    java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else "java"
    return [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", f"-Dkafka.logs.dir={settings.data_dir / 'logs'}",
            "-cp", f"{libs}/*", main, *args]


def _reachable(host_port: str, timeout_s: float) -> bool:
    host, _, port = host_port.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def _ask_kafka(cluster: Secured, timeout_s: float, ask: Callable[[Any], T], silent: T) -> T:
    """`ask(admin)` of the cluster (with its TLS and SASL settings), or `silent` when it does not answer."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    # A refused TCP connect answers at once; kafka-python would retry it for half a minute.
    if not any(_reachable(hp, timeout_s) for hp in cluster.kafka_bootstrap.split(",")):
        return silent
    try:
        admin = KafkaAdminClient(**client_options(cluster), request_timeout_ms=int(timeout_s * 1000))
    except (KafkaError, OSError, ValueError):
        return silent
    try:
        return ask(admin)
    except (KafkaError, OSError):
        return silent
    finally:
        admin.close()


def kafka_answers(cluster: Secured, timeout_s: float = 3.0) -> bool:
    """True when the broker answers a metadata request (with the cluster's TLS and SASL settings)."""
    return _ask_kafka(cluster, timeout_s, lambda admin: admin.list_topics() is not None, False)


def kafka_brokers_up(cluster: Secured, timeout_s: float = 3.0) -> int:
    """How many brokers the cluster's metadata lists (0 when it does not answer)."""
    return _ask_kafka(cluster, timeout_s, lambda admin: len(admin.describe_cluster()["brokers"]), 0)


def start_kafka(settings: Settings, only: str | None = None) -> list[int]:
    """Start the local KRaft node or nodes not running (formatting each log dir once, with one cluster id), or
    only the node named `only`; wait until the cluster answers with all its brokers. Their pids (none when the
    settings name an external cluster)."""
    if settings.kafka_external:
        return []
    nodes = kafka_nodes(settings)
    formatted = [n for n in nodes if (n.folder / "logs" / "meta.properties").exists()]
    if formatted and len(formatted) < len(nodes):
        raise StackError(f"{settings.data_dir}: {len(formatted)} of {len(nodes)} Kafka nodes have data; a stack "
                         f"made with another --brokers count is in this data folder (stack down, and use another "
                         f"YUJING_DATA_DIR or remove it)")
    if not formatted and (settings.data_dir / ("kafka" if len(nodes) > 1 else "kafka-1") / "logs").exists():
        raise StackError(f"{settings.data_dir}: a Kafka stack with another --brokers count has data here "
                         f"(use another YUJING_DATA_DIR or remove it)")
    cluster_id = _cluster_id(nodes)
    pids = []
    for node in nodes:
        pid = _read_pid(settings, node.name)
        if pid is None and only in (None, node.name):
            libs = install_kafka(settings)
            props = _kafka_properties(settings, node, nodes)
            if not (node.folder / "logs" / "meta.properties").exists():
                _format_kafka(settings, libs, props, cluster_id)
            pid = _spawn(settings, node.name, _java_argv(settings, libs, "kafka.Kafka", str(props)),
                         (node.port, node.second_port))
        if pid is not None:
            pids.append(pid)
    _wait_until(lambda: kafka_brokers_up(settings) >= len(nodes)
                and all(_reachable(f"127.0.0.1:{n.port}", 1.0) for n in nodes), 180,
                f"Kafka at {settings.kafka_bootstrap} ({len(nodes)} broker{'s' if len(nodes) > 1 else ''})",
                pids[-1] if pids else None, settings.data_dir / "logs" / f"{nodes[-1].name}.log")
    return pids


def _cluster_id(nodes: list[Node]) -> str:
    """The cluster id the nodes were formatted with, or a new one."""
    for node in nodes:
        meta = node.folder / "logs" / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.partition("=")[2].strip()
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _format_kafka(settings: Settings, libs: Path, props: Path, cluster_id: str) -> None:
    # `=`: a base64url id may begin with '-', which the tool's parser would take for an option (a fresh CI
    # clone failed so, one format in 64)
    scram = ([f"--add-scram={m}=[name={settings.kafka_security.username},"
              f"password={settings.kafka_security.password}]" for m in ("SCRAM-SHA-256", "SCRAM-SHA-512")]
             if settings.kafka_security.sasl else [])
    res = subprocess.run(_java_argv(settings, libs, "kafka.tools.StorageTool", "format",
                                    f"--cluster-id={cluster_id}", "-c", str(props), *scram),
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise StackError(f"formatting Kafka's log dir failed:\n{res.stdout}\n{res.stderr}")


# ----------------------------------------------------------------------------- Redis


def redis_answers(url: str, **options: str) -> bool:
    """True when Redis answers PING (`options`: redis-py's credentials and TLS arguments); for a cluster URL,
    when the cluster answers with every slot served."""
    import redis

    from deploy.redis_client import connect_sync

    try:
        client = connect_sync(url, socket_timeout=2, socket_connect_timeout=2, **options)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def shown_url(url: str) -> str:
    """A URL as it may be printed: any user and password in it left out."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url


def install_redis() -> str:
    """The redis-server binary, installed from Debian's packages where missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0:
        raise StackError("redis-server is missing: run `sudo apt-get install -y redis-server`")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if res.returncode != 0:
            raise StackError(f"{' '.join(cmd)} failed:\n{res.stderr}")
    found = shutil.which("redis-server")
    if not found:
        raise StackError("redis-server still missing after apt-get install")
    return found


def redis_nodes(settings: Settings) -> list[Node]:
    """The local Redis nodes: `redis` alone, or `redis-1`…`redis-6` (three masters, three replicas)."""
    ports = redis_node_ports(settings.redis_port, settings.redis_cluster)
    if len(ports) == 1:
        return [Node("redis", 1, *ports[0], settings.data_dir / "redis")]
    return [Node(f"redis-{i}", i, port, bus, settings.data_dir / f"redis-{i}")
            for i, (port, bus) in enumerate(ports, start=1)]


def start_redis(settings: Settings, only: str | None = None) -> list[int]:
    """Start Redis with AOF (appendfsync everysec) under the data folder, or the six nodes of a Redis Cluster made
    once from them (`only`: that node alone). Their pids (none when the settings name an external Redis)."""
    if settings.redis_external:
        return []
    nodes = redis_nodes(settings)
    binary = install_redis()
    pids = []
    for node in nodes:
        pid = _read_pid(settings, node.name)
        if pid is None and only in (None, node.name):
            node.folder.mkdir(parents=True, exist_ok=True)
            argv = ([binary, *_redis_arguments(settings, node)] if len(nodes) == 1
                    else [binary, str(_redis_cluster_config(settings, node))])
            pid = _spawn(settings, node.name, argv, tuple(p for p in (node.port, node.second_port) if p))
        if pid is not None:
            pids.append(pid)
    if len(nodes) > 1:
        for node in nodes:
            _wait_until(lambda: redis_answers(f"redis://127.0.0.1:{node.port}/0", **settings.redis_options()), 30,
                        f"Redis node at 127.0.0.1:{node.port}", None, settings.data_dir / "logs" / f"{node.name}.log")
        _form_cluster(settings, nodes)
    _wait_until(lambda: redis_answers(settings.redis_url, **settings.redis_options()), 60,
                f"Redis at {shown_url(settings.redis_url)}", pids[-1] if pids else None,
                settings.data_dir / "logs" / f"{nodes[-1].name}.log")
    return pids


def _redis_arguments(settings: Settings, node: Node) -> list[str]:
    return ["--bind", "127.0.0.1", "--port", str(node.port), "--dir", str(node.folder),
            "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no",
            "--protected-mode", "yes", "--logfile", "", *_redis_access(settings)]


def _redis_cluster_config(settings: Settings, node: Node) -> Path:
    """A cluster node's config file (private: with credentials, the replicas' password to their master is in it)."""
    lines = [f"port {node.port}", "bind 127.0.0.1", f"dir {node.folder}", "appendonly yes", "appendfsync everysec",
             "daemonize no", "protected-mode yes", 'logfile ""', "cluster-enabled yes",
             "cluster-config-file nodes.conf", f"cluster-port {node.second_port}",
             # a master that stops answering is replaced by its replica after 3 s (Redis's default waits 15 s)
             "cluster-node-timeout 3000"]
    if settings.redis_password:
        acl = write_redis_acl(node.folder / "users.acl", settings.redis_username or "", settings.redis_password)
        lines += [f"aclfile {acl}", f"masterauth {settings.redis_password}"]
        if settings.redis_username:
            lines.append(f"masteruser {settings.redis_username}")
    path = node.folder / "redis.conf"
    path.touch(mode=0o600)
    path.write_text("\n".join(lines) + "\n")
    return path


def _form_cluster(settings: Settings, nodes: list[Node]) -> None:
    """Make the six nodes one cluster of three masters with a replica each, unless they already are one."""
    import redis

    first = redis.Redis(port=nodes[0].port, socket_timeout=5, **settings.redis_options())
    try:
        known = int(first.cluster("info").get("cluster_known_nodes", 1))
    finally:
        first.close()
    if known >= len(nodes):
        return
    cli = shutil.which("redis-cli")
    if not cli:
        raise StackError("redis-cli is missing: run `sudo apt-get install -y redis-tools`")
    auth = ["--user", settings.redis_username] if settings.redis_username else []
    env = {**os.environ, "REDISCLI_AUTH": settings.redis_password} if settings.redis_password else None
    res = subprocess.run([cli, *auth, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
                          "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise StackError(f"making the Redis Cluster failed:\n{res.stdout}\n{res.stderr}")


def _redis_access(settings: Settings) -> list[str]:
    """Redis's arguments for the settings' credentials: an ACL file (a private file under DATA/redis, so the
    password is not on the command line) with the service user, or the default user with a password."""
    if not settings.redis_password:
        return []
    acl = write_redis_acl(settings.data_dir / "redis" / "users.acl", settings.redis_username or "",
                          settings.redis_password)
    return ["--aclfile", str(acl)]


# ----------------------------------------------------------------------------- the stack


def up(settings: Settings) -> list[Status]:
    """Install what is missing, start every server, and wait until Kafka and Redis answer."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    start_redis(settings)
    start_kafka(settings)
    return status(settings)


def _nodes(settings: Settings) -> list[Node]:
    return kafka_nodes(settings) + redis_nodes(settings)


def down(settings: Settings) -> list[str]:
    """Stop exactly the processes `up` started (by recorded pid); external servers are left alone."""
    stopped = []
    # whatever the settings' shape now, every node a pid file names (a stack made with other flags included)
    names = {n.name for n in _nodes(settings)} | {p.stem for p in (settings.data_dir / "run").glob("*.pid")}
    for name in sorted(n for n in names if n.partition("-")[0] in ("kafka", "redis")):
        pid = _read_pid(settings, name)
        if pid is not None:
            _stop_pid(pid)
            stopped.append(f"{name} (pid {pid})")
        _pid_file(settings, name).unlink(missing_ok=True)
    return stopped


def kill(settings: Settings, name: str) -> None:
    """SIGKILL one server of this stack (a crash) and return once it is gone."""
    pid = _read_pid(settings, name)
    if pid is None:
        raise StackError(f"{name} was not started by this stack (external, or not running)")
    _stop_pid(pid, crash=True)
    _pid_file(settings, name).unlink(missing_ok=True)


def start(settings: Settings, name: str) -> None:
    """Start one server of this stack again on its data, and wait until its cluster answers in full."""
    if name.partition("-")[0] == "kafka":
        start_kafka(settings, only=name)
    else:
        start_redis(settings, only=name)


def restart(settings: Settings, name: str, down_s: float = 0.0, sig: int = signal.SIGTERM,
            until: Callable[[], bool] | None = None, max_down_s: float = 60.0) -> None:
    """Stop one server this stack started (`kafka`, `redis`, or a cluster's node: `kafka-2`, `redis-1`) and start
    it again on the same data (fault-injection tests).

    SIGTERM is a clean stop (Redis writes its AOF, Kafka closes its logs); SIGKILL is a crash (Redis replays its
    AOF, Kafka recovers its logs). The server stays down `down_s` seconds, or, with `until`, until that says so
    (at most `max_down_s`).
    """
    pid = _read_pid(settings, name)
    if pid is None:
        raise StackError(f"{name} was not started by this stack (external, or not running)")
    _stop_pid(pid, crash=sig == signal.SIGKILL)
    _pid_file(settings, name).unlink(missing_ok=True)
    time.sleep(down_s)
    deadline = time.monotonic() + max_down_s
    while until is not None and not until() and time.monotonic() < deadline:
        time.sleep(0.2)
    start(settings, name)


def status(settings: Settings) -> list[Status]:
    """Who runs Kafka and Redis (each node of a cluster), where, and whether each answers."""
    kafka, redis = kafka_nodes(settings), redis_nodes(settings)
    rows = [Status("kafka", settings.kafka_bootstrap, not settings.kafka_external,
                   _read_pid(settings, "kafka") if len(kafka) == 1 else None, kafka_answers(settings, timeout_s=2),
                   len(kafka)),
            Status("redis", shown_url(settings.redis_url), not settings.redis_external,
                   _read_pid(settings, "redis") if len(redis) == 1 else None,
                   redis_answers(settings.redis_url, **settings.redis_options()), len(redis))]
    for node in (kafka if len(kafka) > 1 and not settings.kafka_external else []) + (
            redis if len(redis) > 1 and not settings.redis_external else []):
        rows.append(Status(node.name, f"127.0.0.1:{node.port}", True, _read_pid(settings, node.name),
                           _reachable(f"127.0.0.1:{node.port}", 1.0)))
    return rows
