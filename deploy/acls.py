"""What each service may do on the broker: Kafka ACLs per service, so that one service's credentials cannot erase a
person, block a domain or forge a signal.

    worker          reads the inputs, its own topics and its outputs (explain); writes its outputs (outcomes: an
                    analyst's dismissal), the review page's assessments, internal topics, changelogs (its app
                    id's prefix, which it also creates), commits as its groups, checkpoints as its transactional ids
    sms-gateway     reads dispatch.sms and outcomes; writes outcomes (receipts) and dead letters; its ledger
    task-feed       reads dispatch.phone, dispatch.visit and outcomes; writes outcomes and dead letters
    campaign        reads the registry and the triggers; writes dispatch.sms
    bank            a bank (or the test bank): reads interception.payment; writes interception.replies
    analyst         `yujing review` (and the console's review page): writes yujing.assessments
    shadow          `yujing shadow`: reads the inputs, yujing.decisions and outcomes; writes yujing.shadow-decisions
    reader          reads every topic (explain, the bulletin, the RPZ export, training with outcomes)
    <topic>-writer  a provider writing one input topic (signals.telecom, …, registry.subjects, intel.indicators,
                    outcomes, interception.replies)

`yujing acls SERVICE --principal User:NAME` prints them, `--apply` creates them (as a user the broker takes as
a super user, who also runs `yujing topics`).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from deploy.config import Settings
from schemas.topics import (
    ASSESSMENT_TOPIC,
    HOT_PATH_TOPICS,
    INTERNAL_TOPICS,
    PUBLIC_TOPICS,
    REPLY_TOPIC,
    SHADOW_TOPIC,
    SIGNAL_TOPICS,
    SMS_LEDGER_TOPIC,
    SOURCE_TOPICS,
)
from streams.kafka_io import pipeline_groups
from streams.kafka_security import client_options

WORKER_READS = (*SIGNAL_TOPICS, "registry.subjects", "intel.indicators", "outcomes", REPLY_TOPIC, ASSESSMENT_TOPIC,
                *HOT_PATH_TOPICS)
# outcomes: an analyst's dismissal is a false alarm; assessments: the console's review page writes them
WORKER_WRITES = ("warnings", "dispatch.sms", "dispatch.phone", "dispatch.visit", "interception.payment",
                 "interception.account", "interception.domain", "interception.number", "deadletter", "outcomes",
                 ASSESSMENT_TOPIC, *HOT_PATH_TOPICS)
INPUT_TOPICS = (*SIGNAL_TOPICS, "registry.subjects", "intel.indicators", "outcomes", REPLY_TOPIC)


class Permission(NamedTuple):
    """One allowed operation: on a resource (`topic`, `group`, `transactional_id`), by literal name or prefix."""

    resource: str
    name: str
    operation: str  # READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS
    prefixed: bool = False


def _topics(settings: Settings, logicals: tuple[str, ...], *operations: str) -> list[Permission]:
    return [Permission("topic", settings.topic(t), op) for t in logicals for op in operations]


def service_permissions(settings: Settings, service: str) -> list[Permission]:
    """The permissions of one service (see the module's docstring), each once; ValueError for an unknown one."""
    return list(dict.fromkeys(_permissions(settings, service)))


def _permissions(settings: Settings, service: str) -> list[Permission]:
    app = settings.app_id
    if service == "worker":
        _, stream_group = pipeline_groups(settings)
        # It reads its own outputs too (the console's explain page gathers a warning's story from them), and
        # faust declares the topics its agents use and send to: creating one that exists changes nothing.
        return [*_topics(settings, tuple(dict.fromkeys(WORKER_READS + WORKER_WRITES)), "READ", "CREATE", "DESCRIBE"),
                *_topics(settings, WORKER_WRITES, "WRITE"),
                # changelogs and faust's own topics (created by faust; never deleted or reconfigured by it)
                *(Permission("topic", f"{app}-", op, prefixed=True)
                  for op in ("CREATE", "READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS")),
                *(Permission("group", g, "READ") for g in pipeline_groups(settings)),  # faust's, the hot path's
                *(Permission("transactional_id", f"{stream_group}-", op, prefixed=True)
                  for op in ("WRITE", "DESCRIBE"))]
    if service == "sms-gateway":
        return [*_topics(settings, ("dispatch.sms", "outcomes", SMS_LEDGER_TOPIC), "READ", "DESCRIBE"),
                *_topics(settings, ("outcomes", "deadletter", SMS_LEDGER_TOPIC), "WRITE", "DESCRIBE"),
                Permission("group", f"{app}-sms-gateway", "READ")]
    if service == "task-feed":
        return [*_topics(settings, ("dispatch.phone", "dispatch.visit", "outcomes"), "READ", "DESCRIBE"),
                *_topics(settings, ("outcomes", "deadletter"), "WRITE", "DESCRIBE"),
                Permission("group", f"{app}-task-feed", "READ")]
    if service == "campaign":
        return [*_topics(settings, ("registry.subjects", "yujing.triggers"), "READ", "DESCRIBE"),
                *_topics(settings, ("dispatch.sms",), "WRITE", "DESCRIBE")]
    if service == "reader":
        return _topics(settings, tuple(dict.fromkeys(PUBLIC_TOPICS + INTERNAL_TOPICS)), "READ", "DESCRIBE")
    if service == "analyst":
        return _topics(settings, (ASSESSMENT_TOPIC,), "WRITE", "DESCRIBE")
    if service == "shadow":  # reads the inputs and what was decided; writes only what its candidate would decide
        return [*_topics(settings, (*SOURCE_TOPICS, "registry.subjects", "yujing.decisions", "outcomes", SHADOW_TOPIC),
                         "READ", "DESCRIBE"), *_topics(settings, (SHADOW_TOPIC,), "WRITE")]
    if service == "bank":
        return [*_topics(settings, ("interception.payment",), "READ", "DESCRIBE"),
                *_topics(settings, (REPLY_TOPIC,), "WRITE", "DESCRIBE"), Permission("group", f"{app}-bank", "READ")]
    topic = service.removesuffix("-writer")
    if service.endswith("-writer") and topic in INPUT_TOPICS:
        return _topics(settings, (topic,), "WRITE", "DESCRIBE")
    raise ValueError(f"unknown service {service!r}: one of worker, sms-gateway, task-feed, campaign, reader, bank, "
                     f"analyst, shadow, or <topic>-writer for {', '.join(INPUT_TOPICS)}")


def _acl(principal: str, permission: Permission) -> Any:
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )
    kind = ACLResourcePatternType.PREFIXED if permission.prefixed else ACLResourcePatternType.LITERAL
    pattern = ResourcePattern(ResourceType[permission.resource.upper()], permission.name, kind)
    return ACL(principal, "*", ACLOperation[permission.operation], ACLPermissionType.ALLOW, pattern)


def apply_permissions(settings: Settings, principal: str, permissions: list[Permission]) -> int:
    """Create the ACLs of these permissions for `principal` (`User:NAME`) on the broker; how many (raises on a
    refusal)."""
    from kafka import KafkaAdminClient

    if not principal.startswith("User:") or len(principal) <= len("User:"):
        raise ValueError("a principal is User:NAME")
    admin = KafkaAdminClient(**client_options(settings), client_id="yujing-acls")
    try:
        result = admin.create_acls([_acl(principal, g) for g in permissions])
    finally:
        admin.close()
    failed = result.get("failed", [])
    if failed:
        raise RuntimeError(f"the broker refused {len(failed)} ACLs, the first: {failed[0]}")
    return len(result.get("succeeded", []))
