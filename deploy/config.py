"""Settings read from environment variables, the one place every command takes its configuration from."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.catalogue import LOCALES
from schemas.topics import SOURCE_TOPICS
from streams.kafka_security import KafkaSecurity

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir(env: dict[str, str]) -> Path:
    """`var/data` in a checkout; outside one (an installed wheel) the user's data folder, never site-packages."""
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / "var" / "data"
    return Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "yujing"


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Everything a yujing process needs to find its broker, Redis, data folder and topics."""

    data_dir: Path
    cache_dir: Path
    kafka_bootstrap: str
    kafka_external: bool
    kafka_port: int
    kafka_controller_port: int
    redis_url: str
    redis_external: bool
    redis_port: int
    # Local stack shape (`yujing stack up --brokers 3 --redis-cluster`): KRaft nodes, and Redis Cluster or one Redis
    kafka_brokers: int = 1
    redis_cluster: bool = False
    topic_prefix: str = ""
    signal_partitions: int = 8
    partitions: int = 8
    web_port: int = 6066
    feed_port: int = 6070
    app_id: str = "yujing"
    lookback_hours: int = 72
    late_tolerance_minutes: int = 60
    index_max_people: int = 500
    fanout_threshold: int = 30
    # A source partition read to its end and quiet this long (as the broker saw it) is idle and holds no decision
    # back. Shorter decides sooner; but a partition the producers leave alone for a moment while they write the
    # others would pass for idle, and its next records would be late (decided on arrival, not in event-time order).
    idle_after_ms: int = 500
    # Providers whose progress records count, by topic (`topic=producer,producer;topic=…`): a partition of a listed
    # topic waits for their word instead of for the idle time (docs/streaming.md).
    progress_producers: str = ""
    model_dir: Path | None = None  # None: DATA/model
    bind_host: str = "127.0.0.1"  # where the web, feed and metrics servers listen (0.0.0.0 inside a container)
    # A worker's stable name in its group (a StatefulSet pod's name): a worker restarted under the same name
    # takes its partitions back at once (Kafka static membership) instead of after the session timeout.
    worker_name: str = ""
    # How far past the worker's wall clock an event time from outside may be (providers' clock skew); a record
    # beyond it is dead-lettered rather than moving a window, a partition's time or the escalation clock.
    max_ahead_minutes: int = 60
    kafka_security: KafkaSecurity = KafkaSecurity()
    redis_username: str = ""  # a Redis ACL user (REDIS_URL carries no credentials: they are not printed)
    redis_password: str = field(default="", repr=False)
    redis_ca_file: str = ""  # the CA of a Redis behind TLS (`rediss://`)
    # The names the console is served under (its Host header, port aside): the ingress's name in a deployment.
    allowed_hosts: str = "127.0.0.1,localhost,::1"
    sms_provider: str = "alibaba"  # alibaba, tencent, or jasmin (an SMPP gateway's HTTP API)
    sms_key_id: str = ""  # Alibaba's AccessKey id, Tencent's SecretId, Jasmin's username
    sms_secret: str = field(default="", repr=False)  # its secret (Jasmin: the password)
    sms_app_id: str = ""  # Tencent's SmsSdkAppId
    sms_templates: str = ""  # the provider's approved template codes (default: dispatch/config/sms_providers.toml)
    lang: str = "zh"  # the operators' language: console, reasons, feed errors, CLI messages (zh or en)
    review_policy: str = ""  # the quick-assessment policy file (dispatch/config/review.toml); empty: nothing waits

    @property
    def model_path(self) -> Path:
        """Where workers load the model from (and train the default one into when there is none)."""
        return self.model_dir if self.model_dir is not None else self.data_dir / "model"

    @property
    def redis_prefix(self) -> str:
        """The prefix of every Redis key this pipeline writes (a tenant's or a test's own)."""
        return f"{self.topic_prefix}{self.app_id}:"

    def topic(self, logical: str) -> str:
        """The real topic name for a logical contract name (a prefix isolates tests and tenants)."""
        return f"{self.topic_prefix}{logical}"

    def to_env(self) -> dict[str, str]:
        """These settings as the environment variables that reproduce them in a child process."""
        return {
            "YUJING_DATA_DIR": str(self.data_dir),
            "YUJING_CACHE_DIR": str(self.cache_dir),
            "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "REDIS_URL": self.redis_url,
            "YUJING_KAFKA_BROKERS": str(self.kafka_brokers),
            "YUJING_REDIS_CLUSTER": "1" if self.redis_cluster else "",
            "YUJING_TOPIC_PREFIX": self.topic_prefix,
            "YUJING_SIGNAL_PARTITIONS": str(self.signal_partitions),
            "YUJING_PARTITIONS": str(self.partitions),
            "YUJING_WEB_PORT": str(self.web_port),
            "YUJING_FEED_PORT": str(self.feed_port),
            "YUJING_APP_ID": self.app_id,
            "YUJING_LOOKBACK_HOURS": str(self.lookback_hours),
            "YUJING_LATE_TOLERANCE_MINUTES": str(self.late_tolerance_minutes),
            "YUJING_INDEX_MAX_PEOPLE": str(self.index_max_people),
            "YUJING_FANOUT_THRESHOLD": str(self.fanout_threshold),
            "YUJING_IDLE_AFTER_MS": str(self.idle_after_ms),
            "YUJING_PROGRESS_PRODUCERS": self.progress_producers,
            "YUJING_MODEL_DIR": str(self.model_dir) if self.model_dir is not None else "",
            "YUJING_BIND_HOST": self.bind_host,
            "YUJING_WORKER_NAME": self.worker_name,
            "YUJING_ALLOWED_HOSTS": self.allowed_hosts,
            "YUJING_MAX_AHEAD_MINUTES": str(self.max_ahead_minutes),
            "KAFKA_SECURITY_PROTOCOL": self.kafka_security.protocol,
            "KAFKA_SASL_MECHANISM": self.kafka_security.mechanism,
            "KAFKA_SASL_USERNAME": self.kafka_security.username,
            "KAFKA_SASL_PASSWORD": self.kafka_security.password,
            "KAFKA_SSL_CAFILE": self.kafka_security.cafile,
            "KAFKA_SSL_CERTFILE": self.kafka_security.certfile,
            "KAFKA_SSL_KEYFILE": self.kafka_security.keyfile,
            "REDIS_USERNAME": self.redis_username,
            "REDIS_PASSWORD": self.redis_password,
            "REDIS_SSL_CAFILE": self.redis_ca_file,
            "YUJING_SMS_PROVIDER": self.sms_provider,
            "SMS_KEY_ID": self.sms_key_id,
            "SMS_SECRET": self.sms_secret,
            "SMS_APP_ID": self.sms_app_id,
            "YUJING_SMS_TEMPLATES": self.sms_templates,
            "YUJING_LANG": self.lang,
            "YUJING_REVIEW_POLICY": self.review_policy,
        }

    def redis_options(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's `from_url` beside the URL: the ACL user, its password, the TLS CA."""
        options: dict[str, Any] = {"username": self.redis_username, "password": self.redis_password}
        if self.redis_url.startswith(("rediss://", "rediss+cluster://")):  # redis-py checks the name only if asked
            options |= {"ssl_ca_certs": self.redis_ca_file, "ssl_check_hostname": True}
        return {k: v for k, v in options.items() if v}

    @property
    def producers(self) -> dict[str, tuple[str, ...]]:
        """The providers whose progress records count, by logical topic."""
        return parse_producers(self.progress_producers)

    @property
    def kafka_url(self) -> str:
        """Faust's broker URL form of the bootstrap list."""
        return ";".join(f"kafka://{hp}" for hp in self.kafka_bootstrap.split(","))


def kafka_node_ports(port: int, controller_port: int, brokers: int) -> list[tuple[int, int]]:
    """The (client, controller) ports of each local KRaft node: the settings' pair, then every second port after."""
    return [(port + 2 * i, controller_port + 2 * i) for i in range(brokers)]


def redis_node_ports(port: int, cluster: bool) -> list[tuple[int, int]]:
    """The (client, cluster bus) ports of each local Redis node: one, or three masters and three replicas whose
    bus ports sit ten above (Redis's default, port + 10000, would leave the project's range below 32768)."""
    if not cluster:
        return [(port, 0)]
    return [(port + i, port + 10 + i) for i in range(6)]


def parse_producers(text: str) -> dict[str, tuple[str, ...]]:
    """`signals.telecom=gw1,gw2;signals.payment=bank-hub` as {topic: producers}; a clear error if it is not that."""
    out: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        topic, _, names = (s.strip() for s in part.partition("="))
        producers = tuple(filter(None, (n.strip() for n in names.split(","))))
        if topic not in SOURCE_TOPICS or not producers:
            raise SystemExit(f"YUJING_PROGRESS_PRODUCERS: {part!r} is not <input topic>=<producer>[,<producer>…] "
                             f"(input topics: {', '.join(SOURCE_TOPICS)})")
        out[topic] = producers
    return out


def format_producers(producers: dict[str, tuple[str, ...]]) -> str:
    """The settings' text of {topic: producers}."""
    return ";".join(f"{topic}={','.join(names)}" for topic, names in producers.items())


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from the environment (or a given mapping, for tests)."""
    env = dict(os.environ if env is None else env)
    idle_after_ms = _env_int(env, "YUJING_IDLE_AFTER_MS", 500)
    if idle_after_ms < 1:
        raise SystemExit("YUJING_IDLE_AFTER_MS must be at least 1 (milliseconds a source must be quiet to be idle)")
    if _env_int(env, "YUJING_MAX_AHEAD_MINUTES", 0) < 0:
        raise SystemExit("YUJING_MAX_AHEAD_MINUTES must not be negative (minutes an event time may be ahead of "
                         "the wall clock)")
    kafka_brokers = _env_int(env, "YUJING_KAFKA_BROKERS", 1)
    if kafka_brokers not in (1, 3):
        raise SystemExit("YUJING_KAFKA_BROKERS must be 1 or 3 (the local stack's KRaft nodes)")
    redis_cluster = env.get("YUJING_REDIS_CLUSTER", "") not in ("", "0")
    # Each shape of the local stack has its own default folder and ports, so that one does not find the other's
    # data, and both may run side by side.
    shape = ("-k3" if kafka_brokers == 3 else "") + ("-rc" if redis_cluster else "")
    default_dir = default_data_dir(env)
    data_dir = Path(env.get("YUJING_DATA_DIR") or default_dir.with_name(default_dir.name + shape)).resolve()
    cache_dir = Path(env.get("YUJING_CACHE_DIR") or Path.home() / ".cache" / "yujing").resolve()
    kafka_port = _env_int(env, "YUJING_KAFKA_PORT", 19192 if kafka_brokers == 3 else 19092)
    redis_port = _env_int(env, "YUJING_REDIS_PORT", 16479 if redis_cluster else 16379)
    kafka_bootstrap = env.get("KAFKA_BOOTSTRAP", "")
    redis_url = env.get("REDIS_URL", "")
    controller_port = _env_int(env, "YUJING_KAFKA_CONTROLLER_PORT", kafka_port + 1)
    if "@" in redis_url.partition("://")[2].partition("/")[0]:
        raise SystemExit("REDIS_URL must carry no user or password (they would be printed): use REDIS_USERNAME "
                         "and REDIS_PASSWORD_FILE")
    return Settings(
        data_dir=data_dir,
        cache_dir=cache_dir,
        kafka_bootstrap=kafka_bootstrap or ",".join(f"127.0.0.1:{port}" for port, _ in
                                                    kafka_node_ports(kafka_port, controller_port, kafka_brokers)),
        kafka_external=bool(kafka_bootstrap),
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        redis_url=redis_url or (f"redis+cluster://127.0.0.1:{redis_port}" if redis_cluster
                                else f"redis://127.0.0.1:{redis_port}/0"),
        redis_external=bool(redis_url),
        redis_port=redis_port,
        kafka_brokers=kafka_brokers,
        redis_cluster=redis_cluster,
        topic_prefix=env.get("YUJING_TOPIC_PREFIX", ""),
        signal_partitions=_env_int(env, "YUJING_SIGNAL_PARTITIONS", 8),
        partitions=_env_int(env, "YUJING_PARTITIONS", 8),
        web_port=_env_int(env, "YUJING_WEB_PORT", 6066),
        feed_port=_env_int(env, "YUJING_FEED_PORT", 6070),
        app_id=env.get("YUJING_APP_ID", "yujing"),
        lookback_hours=_env_int(env, "YUJING_LOOKBACK_HOURS", 72),
        late_tolerance_minutes=_env_int(env, "YUJING_LATE_TOLERANCE_MINUTES", 60),
        index_max_people=_env_int(env, "YUJING_INDEX_MAX_PEOPLE", 500),
        fanout_threshold=_env_int(env, "YUJING_FANOUT_THRESHOLD", 30),
        idle_after_ms=idle_after_ms,
        progress_producers=format_producers(parse_producers(env.get("YUJING_PROGRESS_PRODUCERS", ""))),
        model_dir=Path(env["YUJING_MODEL_DIR"]).resolve() if env.get("YUJING_MODEL_DIR") else None,
        bind_host=env.get("YUJING_BIND_HOST") or "127.0.0.1",
        worker_name=env.get("YUJING_WORKER_NAME", ""),
        allowed_hosts=env.get("YUJING_ALLOWED_HOSTS") or Settings.allowed_hosts,
        max_ahead_minutes=_env_int(env, "YUJING_MAX_AHEAD_MINUTES", Settings.max_ahead_minutes),
        kafka_security=_kafka_security(env),
        redis_username=env.get("REDIS_USERNAME", ""),
        redis_password=_secret(env, "REDIS_PASSWORD"),
        redis_ca_file=env.get("REDIS_SSL_CAFILE", ""),
        sms_provider=env.get("YUJING_SMS_PROVIDER") or Settings.sms_provider,
        sms_key_id=env.get("SMS_KEY_ID", ""),
        sms_secret=_secret(env, "SMS_SECRET"),
        sms_app_id=env.get("SMS_APP_ID", ""),
        sms_templates=env.get("YUJING_SMS_TEMPLATES", ""),
        lang=_lang(env),
        review_policy=env.get("YUJING_REVIEW_POLICY", ""),
    )


def _lang(env: dict[str, str]) -> str:
    lang = env.get("YUJING_LANG") or Settings.lang
    if lang not in LOCALES:
        raise SystemExit(f"YUJING_LANG must be one of {', '.join(LOCALES)}, not {lang!r}")
    return lang


def _secret(env: dict[str, str], name: str) -> str:
    """A secret from the file `NAME_FILE` names (a mounted k8s Secret), else from `NAME` itself."""
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise SystemExit(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return env.get(name, "")


def _kafka_security(env: dict[str, str]) -> KafkaSecurity:
    try:
        return KafkaSecurity(protocol=env.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT",
                             mechanism=env.get("KAFKA_SASL_MECHANISM", ""), username=env.get("KAFKA_SASL_USERNAME", ""),
                             password=_secret(env, "KAFKA_SASL_PASSWORD"), cafile=env.get("KAFKA_SSL_CAFILE", ""),
                             certfile=env.get("KAFKA_SSL_CERTFILE", ""), keyfile=env.get("KAFKA_SSL_KEYFILE", ""))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
