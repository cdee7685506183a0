"""How every Kafka client of the project connects: plaintext, TLS, SASL (PLAIN, SCRAM) over TLS or not."""
from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import Any, Protocol

# kafka-python's admin client logs its whole configuration, password included, at DEBUG
logging.getLogger("kafka.admin.client").setLevel(logging.INFO)

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """The security settings of the Kafka clients (the password never in a repr or a log)."""

    protocol: str = "PLAINTEXT"
    mechanism: str = ""  # with a SASL protocol: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: str = ""  # the CA that signed the brokers' certificates (the system's CAs when empty)
    certfile: str = ""  # a client certificate and key, when the brokers ask for one (mutual TLS)
    keyfile: str = ""

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")
        if self.sasl and (self.mechanism not in MECHANISMS or not self.username or not self.password):
            raise ValueError(f"{self.protocol} needs KAFKA_SASL_MECHANISM (one of {', '.join(MECHANISMS)}), "
                             "KAFKA_SASL_USERNAME and a password (KAFKA_SASL_PASSWORD_FILE or KAFKA_SASL_PASSWORD)")

    @property
    def sasl(self) -> bool:
        """True when the clients authenticate with SASL."""
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        """True when the connection is encrypted."""
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context the clients verify the brokers with (None over plaintext)."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.cafile or None)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile or None)
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's and aiokafka's clients (they share the names)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options |= {"sasl_mechanism": self.mechanism, "sasl_plain_username": self.username,
                        "sasl_plain_password": self.password}
        return options


class Secured(Protocol):
    """What a client needs of the settings: where the brokers are and how to reach them."""

    kafka_bootstrap: str
    kafka_security: KafkaSecurity


def client_options(cluster: Secured) -> dict[str, Any]:
    """The keyword arguments that connect a kafka-python or aiokafka client to the cluster."""
    return {"bootstrap_servers": cluster.kafka_bootstrap, **cluster.kafka_security.client_options()}
