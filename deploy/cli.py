"""The `yujing` command line: one entry point, one subcommand per job."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from deploy.config import Settings, load_settings
from deploy.progress import record_bar, step_bar
from deploy.review_cli import add_review_command
from deploy.shadow import add_shadow_command
from schemas.units import HOUR_MS


def _add_shape_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--brokers", type=int, choices=[1, 3], help="local Kafka nodes (default: YUJING_KAFKA_BROKERS or 1)")
    p.add_argument("--redis-cluster", action="store_true", help="a local Redis Cluster (3 masters, 3 replicas) "
                                                                "instead of one Redis (YUJING_REDIS_CLUSTER=1)")
    p.add_argument("--cluster", action="store_true", help="both: three Kafka nodes and a Redis Cluster")


def _shaped_settings(args: argparse.Namespace) -> Settings:
    """The settings, with the stack's shape the flags ask for (child processes get it from `Settings.to_env`)."""
    env = dict(os.environ)
    if args.cluster or args.brokers is not None:
        env["YUJING_KAFKA_BROKERS"] = "3" if args.cluster else str(args.brokers)
    if args.cluster or args.redis_cluster:
        env["YUJING_REDIS_CLUSTER"] = "1"
    return load_settings(env)


def _stack(args: argparse.Namespace) -> int:
    from deploy import stack

    settings = _shaped_settings(args)
    try:
        if args.action == "up":
            for st in stack.up(settings):
                print(st.line())
            print(f"data folder: {settings.data_dir}")
        elif args.action == "down":
            stopped = stack.down(settings)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        elif args.action == "secrets":
            from deploy.credentials import make_compose_secrets

            folder = Path(args.out)
            made = make_compose_secrets(folder)
            print(f"{len(made)} files in {folder} (passwords kept where they existed): "
                  f"{', '.join(sorted(p.name for p in made))}")
        else:
            statuses = stack.status(settings)
            for st in statuses:
                print(st.line())
            return 0 if all(st.answering for st in statuses) else 1
    except (stack.StackError, stack.CredentialsError) as exc:
        print(f"yujing stack {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


def _topics(args: argparse.Namespace) -> int:
    from deploy.topics import create_topics

    for name, state in create_topics(load_settings()):
        print(f"{state:<8} {name}")
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from importlib.metadata import version

    from schemas.published import write_published

    for path in write_published(Path(args.out), version("yujing")):
        print(path)
    return 0


def _acls(args: argparse.Namespace) -> int:
    from deploy.acls import apply_permissions, service_permissions

    settings = load_settings()
    try:
        permissions = service_permissions(settings, args.service)
        if args.apply:
            print(f"{apply_permissions(settings, args.principal, permissions)} ACLs created for {args.principal}")
            return 0
    except ValueError as exc:
        raise SystemExit(f"yujing acls: {exc}") from None
    for p in permissions:
        print(f"{args.principal} {p.operation:<16} {p.resource} {p.name}{'*' if p.prefixed else ''}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from deploy.app import run_worker

    run_worker(load_settings(), args.faust_args)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from deploy.demo import run_demo
    from deploy.stack import StackError

    try:
        return run_demo(_shaped_settings(args), residents=args.residents, days=args.days, seed=args.seed,
                        keep=args.keep, workers=args.workers, speed=args.speed, attempts=args.attempts)
    except StackError as exc:
        print(f"yujing demo: {exc}", file=sys.stderr)
        return 2


def _city_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from scorers.lab.city import CityConfig
    from scorers.lab.city.family import family

    name = f"draw-{args.draw}" if getattr(args, "draw", None) is not None else args.family
    return CityConfig(residents=args.residents, days=args.days, seed=args.seed, family=family(name),
                      attempts_per_10k_per_day=args.attempts)


def _simulate(args: argparse.Namespace) -> int:
    import json
    import time

    from deploy.city_stream import stream_city
    from deploy.topics import create_topics
    from scorers.lab.city import City

    settings = load_settings()
    try:
        city = City(_city_config(args))
    except KeyError as exc:
        print(f"yujing simulate: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.kafka:
        create_topics(settings)
    name = city.cfg.family.name
    out = Path(args.out) if args.out else settings.data_dir / "simulations" / f"{name}-seed-{city.cfg.seed}"
    t0 = time.monotonic()
    bar, progress = record_bar("streaming" if args.kafka else "simulating")
    with bar:  # into a running pipeline the registry goes first, as in a deployment where it is there long before
        counts = stream_city(settings if args.kafka else None, city, args.speed, out, progress=progress,
                             registry_first=args.kafka)
        progress(sum(counts.values()))
    elapsed = time.monotonic() - t0
    total = sum(counts.values())
    print(f"{total:,} records in {elapsed:.1f}s ({total / elapsed:,.0f}/s): {counts}")
    print(f"family {name}: {city.cfg.family.about}")
    print(json.dumps(city.cfg.describe()["family"], indent=1))
    print(f"fraud attempts: {len(city.truth)}, engaged: {sum(e.engaged for e in city.truth)}, with a loss: "
          f"{sum(e.first_loss_ts is not None for e in city.truth)}; large legitimate transfers: "
          f"{len(city.large_legit)}; indicators retracted: {len(city.retractions)}; truth in {out}")
    return 0


def _plan(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from scorers.lab.protocol import Size
    from scorers.lab.training import DEFAULT_PLAN
    from scorers.lab.tune import Budget

    plan = DEFAULT_PLAN
    if args.training:
        plan = dataclasses.replace(plan, training=tuple(args.training.split(",")))
    if args.tuning:
        plan = dataclasses.replace(plan, tuning=tuple(args.tuning.split(",")))
    if args.residents or args.days:
        plan = dataclasses.replace(
            plan, train_size=Size(args.residents or plan.train_size.residents, args.days or plan.train_size.days,
                                  plan.train_size.incidence),
            tune_size=Size(args.residents or plan.tune_size.residents, args.days or plan.tune_size.days,
                           plan.tune_size.incidence))
    if args.budget is not None:
        plan = dataclasses.replace(plan, budget=Budget(ordinary_per_10k_per_day=args.budget))
    return plan


def _train(args: argparse.Namespace) -> int:
    from scorers.lab.training import train_model

    settings = load_settings()
    labels = None
    if args.with_outcomes:
        from deploy.field_labels import outcome_labels

        labels = outcome_labels(settings)
        print(f"outcome labels from the field: {len(labels)} decisions")
    folder = Path(args.out) if args.out else settings.model_path
    plan = _plan(args)
    bar, step = step_bar("training", len(plan.training) + 1 + len(plan.tuning) + 1)
    with bar:
        model = train_model(folder, plan, outcome_rows=labels, cache=settings.data_dir / "lab-cache", step=step)
    worst = model.meta["tuning"]["worst_case"]
    policy = model.tier_policy()
    print(f"model {model.version} in {folder}, fitted on {', '.join(plan.training)} "
          f"({model.meta['train_seconds']}s)")
    print(f"thresholds t3 {policy.t3_score}, t2 {policy.t2_score}, t1 {policy.t1_score}, chosen on "
          f"{', '.join(plan.tuning)}: worst case {worst}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from scorers.lab.evaluate import worst_case
    from scorers.lab.protocol import HELD_OUT, HELD_OUT_SIZE, Size, judge
    from scorers.lab.report import write_report
    from scorers.model import load

    settings = load_settings()
    if args.live:
        from deploy.live_figures import live_figures

        print(json.dumps(live_figures(settings, Path(args.live)), indent=2))
        return 0
    model = load(Path(args.model) if args.model else settings.model_path)
    names = tuple(args.families.split(",")) if args.families else HELD_OUT
    size = Size(args.residents or HELD_OUT_SIZE.residents, args.days or HELD_OUT_SIZE.days)
    bar, step = step_bar("evaluating", 2 * len(names))
    try:
        with bar:
            per_family = judge(model, names, size, cache=settings.data_dir / "lab-cache", step=step)
    except (ValueError, KeyError) as exc:
        print(f"yujing evaluate: {exc.args[0]}", file=sys.stderr)
        return 2
    worst = worst_case(per_family)
    folder = Path(args.report) if args.report else settings.data_dir / "reports" / "evaluation"
    page = write_report(folder, per_family, worst, model.meta, model.tier_policy().version)
    keys = ("recall_before_loss", "recall_10min_before_loss", "t1_t2_precision", "ordinary_warned_per_10k_per_day",
            "stop_payments_on_ordinary_share", "median_lead_minutes")
    for name, figs in per_family.items():
        print(f"{name:15s} " + "  ".join(f"{k} {figs['model'][k]} (naive {figs['baseline_any_indicator_contact'][k]})"
                                          for k in keys[:4]))
    print("worst held-out case:", json.dumps({k: v for k, v in worst.get("model", {}).items()}))
    print(f"report: {page}")
    return 0


def _route_test(args: argparse.Namespace) -> int:
    from dispatch.routing import LABELS, RouteConfigError, describe, load_routes

    labels = {}
    for item in args.labels:
        key, sep, value = item.partition("=")
        if not sep or key not in LABELS:
            print(f"yujing route-test: expected label=value with label one of {', '.join(LABELS)}; got {item!r}",
                  file=sys.stderr)
            return 2
        labels[key] = value
    try:
        config = load_routes(Path(args.config)) if args.config else load_routes()
    except RouteConfigError as exc:
        print(f"yujing route-test: {exc}", file=sys.stderr)
        return 2
    try:
        print(describe(config, labels))
    except LookupError as exc:
        print(f"yujing route-test: {exc}: no route of {args.config or 'dispatch/config/routes.toml'} takes it "
              "(tiers are T1, T2, T3)", file=sys.stderr)
        return 2
    return 0


def _sms_gateway(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from deploy.sms_service import ReceiptOptions, run
    from dispatch.sms import RetryPolicy

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(message)s")
    settings = load_settings()
    if args.provider:
        settings = dataclasses.replace(settings, sms_provider=args.provider)
    receipts = ReceiptOptions(args.receipt_every, args.receipt_timeout, args.receipt_port, args.receipt_url or "")
    asyncio.run(run(settings, args.url, args.rate, args.clock, metrics_port=args.metrics_port, rebuild=args.rebuild,
                    receipts=receipts, retry=RetryPolicy(throttled_s=args.throttle_wait)))
    return 0


def _task_feed(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from deploy.task_feed_service import run

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(message)s")
    settings = load_settings()
    asyncio.run(run(settings, args.port or settings.feed_port, args.clock, args.claim_timeout, rebuild=args.rebuild))
    return 0


def _console_token(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from deploy.redis_client import connect
    from ops.access import ConsoleTokens

    settings = load_settings()

    async def act() -> str:
        client = connect(settings.redis_url, **settings.redis_options())
        try:
            tokens = ConsoleTokens(client, settings.redis_prefix)
            if args.revoke:
                return f"revoked {await tokens.revoke(args.holder)} token(s) of {args.holder}"
            return await tokens.issue(args.holder, args.role, int(args.hours * 3600), int(time.time() * 1000))
        finally:
            await client.aclose()

    if args.hours * 3600 < 1:
        print("yujing console-token: --hours must be at least a second", file=sys.stderr)
        return 2
    print(asyncio.run(act()))
    return 0


def _feed_token(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from deploy.redis_client import connect
    from deploy.task_feed_service import feed_prefix
    from dispatch.task_queue import TaskQueues
    from dispatch.tasks import Scope

    settings = load_settings()

    async def act(scope: Scope | None) -> str:
        client = connect(settings.redis_url, **settings.redis_options())
        try:
            queues = TaskQueues(client, feed_prefix(settings), 0)
            if scope is None:
                return f"revoked {await queues.revoke_tokens(args.worker)} token(s) of {args.worker}"
            return await queues.issue_token(scope, int(args.hours * 3600), int(time.time() * 1000))
        finally:
            await client.aclose()

    if args.revoke:
        print(asyncio.run(act(None)))
        return 0
    if not (args.grid or args.station) or args.hours * 3600 < 1:
        print("yujing feed-token: give --grid G or --station S (or --revoke), and positive --hours", file=sys.stderr)
        return 2
    try:
        scope = Scope(args.worker, "grid", args.grid) if args.grid else Scope(args.worker, "station", args.station)
    except ValueError as exc:
        print(f"yujing feed-token: {exc}", file=sys.stderr)
        return 2
    print(asyncio.run(act(scope)))
    return 0


def _campaign(args: argparse.Namespace) -> int:
    import asyncio
    from datetime import datetime, timezone

    from deploy.campaign_launch import launch, pipeline_clock, trends
    from dispatch.campaign import Campaign

    settings = load_settings()
    at = args.at if args.at is not None else asyncio.run(pipeline_clock(settings))
    if args.trends:
        print(f"exposures to case elements, the day before {datetime.fromtimestamp(at / 1000, timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(f"{'fraud type':<26}{'last 24 h':>10}{'24 h before':>13}")
        for fraud_type, recent, before in trends(settings, at):
            print(f"{fraud_type:<26}{recent:>10}{before:>13}")
        return 0
    if not args.fraud_type:
        print("yujing campaign: --fraud-type is required (or --trends)", file=sys.stderr)
        return 2
    campaign = Campaign(fraud_type=args.fraud_type, ts=at, age_min=args.age_min, age_max=args.age_max,
                        grids=frozenset(args.grid or ()), stations=frozenset(args.station or ()),
                        exposed_to=args.exposed_to, exposed_within_ms=int(args.within_hours * HOUR_MS), name=args.name)
    report = launch(settings, campaign, dry_run=args.dry_run)
    print(f"campaign {report.campaign_id}: {report.audience} people in the group, {report.no_phone} without a line, "
          f"{report.suppressed} held back by the cooldown, {report.queued} reminders queued"
          + (" (dry run: nothing queued, cooldown not consulted)" if args.dry_run else ""))
    return 0


def _explain(args: argparse.Namespace) -> int:
    import json

    from ops.explain import as_dict, gather, render

    trail = gather(load_settings(), args.warning_id)
    print(json.dumps(as_dict(trail), ensure_ascii=False, indent=2) if args.json else render(trail))
    return 0 if trail.decision is not None else 1


def _bulletin(args: argparse.Namespace) -> int:
    from datetime import date

    from ops.bulletin import figures, read_records, write

    settings = load_settings()
    records, left_out = read_records(settings)
    f = figures(records, date.fromisoformat(args.date), args.days) | {"left_out": left_out}
    md, page = write(f, Path(args.out) if args.out else settings.data_dir / "reports" / f"bulletin-{args.date}")
    print(md.read_text(encoding="utf-8"))
    print(f"written: {md} and {page}")
    return 0


def _test_bank(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from deploy.bank_stub_service import run

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(message)s")
    asyncio.run(run(load_settings(), args.bank, int(args.answer_after * 1000)))
    return 0


def _sms_gateway_stub(args: argparse.Namespace) -> int:
    from deploy.sms_gateway_stub_service import serve

    settings = load_settings()
    serve(args.port, settings.sms_key_id or "yujing", settings.sms_secret or "secret08",
          settings.sms_app_id or "1400000001")
    return 0


def _rpz(args: argparse.Namespace) -> int:
    import time

    from dispatch.interceptions import active_domains, rpz_zone
    from schemas.decode import InvalidRecord, decode_typed
    from schemas.records import DomainInterception
    from streams.kafka_io import read_to_end

    settings = load_settings()
    records = []
    for msg in read_to_end(settings, settings.topic("interception.domain")):
        try:
            records.append(decode_typed(DomainInterception, msg.value))
        except InvalidRecord:  # a tombstone (the key forgotten) or a record that is not one
            continue
    now = args.at if args.at is not None else int(time.time() * 1000)
    zone, skipped = rpz_zone(active_domains(records, now), origin=args.origin)
    if skipped:
        print(f"yujing rpz: {len(skipped)} domain(s) left out, too long under the origin {args.origin}: "
              f"{', '.join(skipped[:5])}{' …' if len(skipped) > 5 else ''}", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(zone)
    else:
        sys.stdout.write(zone)
    return 0


def _add_token_commands(sub: Any) -> None:
    """The subcommands that issue and revoke the feed's and the console's tokens."""
    p = sub.add_parser("feed-token", help="issue (or revoke) a task-feed token for a grid worker or a station's caller")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--grid", help="the grid whose visits the worker takes")
    who.add_argument("--station", help="the station whose calls (and visits without a grid) the caller takes")
    p.add_argument("--worker", required=True, help="who holds the token (logged with every claim)")
    p.add_argument("--hours", type=float, default=24.0, help="how long the token is valid (default 24)")
    p.add_argument("--revoke", action="store_true", help="revoke every token of this worker")
    p.set_defaults(func=_feed_token)
    p = sub.add_parser("console-token", help="issue (or revoke) a console token: a viewer sees the console, an "
                                             "analyst also a warning's audit trail")
    p.add_argument("--holder", required=True, help="who holds the token (logged at sign-in and with every explain)")
    p.add_argument("--role", choices=["viewer", "analyst"], default="viewer")
    p.add_argument("--hours", type=float, default=12.0, help="how long the token is valid (default 12, one shift)")
    p.add_argument("--revoke", action="store_true", help="revoke every token of this holder")
    p.set_defaults(func=_console_token)


def _add_sms_command(sub: Any) -> None:
    """`yujing sms-gateway` and its options."""
    p = sub.add_parser("sms-gateway", help="send dispatch.sms through an SMS provider; its receipts to outcomes")
    p.add_argument("--provider", choices=["alibaba", "tencent", "jasmin"],
                   help="the provider (default: YUJING_SMS_PROVIDER, else alibaba); credentials from SMS_KEY_ID and "
                        "SMS_SECRET or SMS_SECRET_FILE (Tencent also SMS_APP_ID), approved template codes from "
                        "YUJING_SMS_TEMPLATES")
    p.add_argument("--url", default="http://127.0.0.1:9110",
                   help="the provider's endpoint: https://dysmsapi.aliyuncs.com, https://sms.tencentcloudapi.com, or "
                        "Jasmin's HTTP API (http://jasmin:1401); default: the local test gateway")
    p.add_argument("--receipt-every", type=float, default=30.0, help="seconds between looks for receipts (pulled)")
    p.add_argument("--receipt-timeout", type=float, default=86_400.0,
                   help="seconds after the provider took a message without a receipt before it is reported failed")
    p.add_argument("--receipt-port", type=int, help="serve the receipt callback (Jasmin's dlr-url) on this port")
    p.add_argument("--receipt-url", help="the callback's URL as the gateway reaches it (default: 127.0.0.1 and the "
                                         "port)")
    p.add_argument("--throttle-wait", type=float, default=60.0,
                   help="seconds to wait before sending again a message the provider throttled")
    p.add_argument("--rate", type=float, default=50.0, help="messages per second at most")
    p.add_argument("--clock", choices=["wall", "event"], default="wall",
                   help="what `expires_ts` and `not_before_ts` are compared with: the wall clock, or the "
                        "pipeline's event time (for simulated days)")
    p.add_argument("--metrics-port", type=int, help="serve /metrics on 127.0.0.1 at this port (e.g. 9111)")
    p.add_argument("--rebuild", action="store_true",
                   help="park or send every unreceipted message again from Kafka (done by itself when Redis lost them)")
    p.set_defaults(func=_sms_gateway)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("yujing")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _add_test_counterparts(sub: Any) -> None:
    """The local SMS gateway and bank the tests and the demo talk to."""
    p = sub.add_parser("test-gateway", help="a local SMS gateway speaking Alibaba's, Tencent's and Jasmin's APIs, for "
                                            "tests and the demo (127.0.0.1; the credentials of SMS_KEY_ID, SMS_SECRET, "
                                            "SMS_APP_ID, else yujing / secret08 / 1400000001)")
    p.add_argument("--port", type=int, default=9110)
    p.set_defaults(func=_sms_gateway_stub)
    p = sub.add_parser("test-bank", help="a bank answering stop-payment requests on interception.replies, for tests "
                                         "and the demo (held, or refused when a request lacks its legal basis)")
    p.add_argument("--bank", default="TEST-BANK", help="the bank's name where a request names no payee bank")
    p.add_argument("--answer-after", type=float, default=60.0, help="event-time seconds from request to answer")
    p.set_defaults(func=_test_bank)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="yujing", description="Streaming early warning against telecom fraud.")
    parser.add_argument("--version", action="version", version=f"yujing {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stack", help="start, stop or inspect the local Kafka + Redis stack")
    p.add_argument("action", choices=["up", "down", "status", "secrets"],
                   help="secrets: make the keys, certificates and passwords the compose file mounts (--out)")
    p.add_argument("--out", default="deploy/compose/secrets", help="where `secrets` writes (default: %(default)s)")
    _add_shape_flags(p)
    p.set_defaults(func=_stack)
    p = sub.add_parser("topics", help="create the contract's topics")
    p.set_defaults(func=_topics)
    p = sub.add_parser("schemas", help="write the contract's JSON Schemas (one per topic) and its AsyncAPI document")
    p.add_argument("--out", default="var/schemas", help="the folder to write them to (default: %(default)s)")
    p.set_defaults(func=_schemas)
    p = sub.add_parser("acls", help="what a service may do on the broker (Kafka ACLs): print them, or --apply")
    p.add_argument("service", help="worker, sms-gateway, task-feed, campaign, reader, bank, analyst, shadow, or "
                                   "<input topic>-writer")
    p.add_argument("--principal", required=True, help="the service's user, as User:NAME")
    p.add_argument("--apply", action="store_true", help="create them on the broker (as a super user)")
    p.set_defaults(func=_acls)
    p = sub.add_parser("worker", help="run a Faust worker (extra arguments go to faust's worker)")
    p.add_argument("faust_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_worker)
    p = sub.add_parser("simulate", help="generate a simulated city of a family; write its ground truth and the "
                                        "family's parameters; stream it into Kafka")
    p.add_argument("--family", default="textbook", help="a named family (scorers/lab/city/family.py)")
    p.add_argument("--draw", type=int, help="the K-th random family from the parameter space instead")
    p.add_argument("--residents", type=int, default=20_000)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--attempts", type=float, help="fraud attempts per 10k residents per day (default: the family's)")
    p.add_argument("--kafka", action="store_true", help="stream the records into the contract's topics")
    p.add_argument("--speed", type=float, default=0.0, help="× event time (0: as fast as possible)")
    p.add_argument("--out", help="folder for the ground truth (default: DATA/simulations/FAMILY-seed-N)")
    p.set_defaults(func=_simulate)
    p = sub.add_parser("train", help="fit the model on the training families, choose its thresholds on the tuning "
                                     "families")
    p.add_argument("--training", help="comma-separated families to fit on (default: scorers/lab/protocol.py)")
    p.add_argument("--tuning", help="comma-separated families to choose the thresholds on")
    p.add_argument("--residents", type=int, help="residents of each training and tuning city")
    p.add_argument("--days", type=int, help="days of each training and tuning city")
    p.add_argument("--budget", type=float, help="ordinary residents warned per 10k per day allowed (default 5)")
    p.add_argument("--with-outcomes", action="store_true",
                   help="add the field's outcomes (dissuaded, already lost, false alarm) as labels")
    p.add_argument("--out", help="model folder (default: DATA/model)")
    p.set_defaults(func=_train)
    p = sub.add_parser("evaluate", help="the model and tiers on held-out families, each beside the naive baseline, "
                                        "worst first")
    p.add_argument("--families", help="comma-separated families (default: every held-out one)")
    p.add_argument("--residents", type=int, help="residents of each city (default 3000)")
    p.add_argument("--days", type=int, help="days of each city (default 4)")
    p.add_argument("--model", help="model folder (default: DATA/model)")
    p.add_argument("--report", help="report folder (default: DATA/reports/evaluation)")
    p.add_argument("--live", metavar="SIMULATION", help="instead: score what a live pipeline sent for a city "
                                                        "streamed by `yujing simulate --kafka` (its truth folder)")
    p.set_defaults(func=_evaluate)
    p = sub.add_parser("route-test", help="print the route a warning with these labels takes (tier=T2 grid=G0012 …)")
    p.add_argument("labels", nargs="+", help="label=value: tier, fraud_type, grid, station")
    p.add_argument("--config", help="routing config (default: dispatch/config/routes.toml)")
    p.set_defaults(func=_route_test)
    _add_sms_command(sub)
    p = sub.add_parser("task-feed", help="grid workers' and callers' task feed (HTTP on 127.0.0.1) over Redis Streams")
    p.add_argument("--port", type=int, help="HTTP port (default: YUJING_FEED_PORT, 6070)")
    p.add_argument("--clock", choices=["wall", "event"], default="wall",
                   help="the time reported outcomes carry: the wall clock, or the pipeline's event time")
    p.add_argument("--claim-timeout", type=float, default=1800.0,
                   help="seconds a claim lasts without renewal before the task returns to the queue")
    p.add_argument("--rebuild", action="store_true",
                   help="queue every unreported task again from Kafka (done by itself when Redis lost the queues)")
    p.set_defaults(func=_task_feed)
    _add_token_commands(sub)
    add_review_command(sub)
    add_shadow_command(sub)
    p = sub.add_parser("campaign", help="launch a reminder campaign (宣传) to an at-risk group through the SMS queue")
    p.add_argument("--fraud-type", help="the fraud type the reminder is about")
    p.add_argument("--age-min", type=int)
    p.add_argument("--age-max", type=int)
    p.add_argument("--grid", action="append", help="a grid to reach (repeatable; default: all)")
    p.add_argument("--station", action="append", help="a station's area to reach (repeatable; default: all)")
    p.add_argument("--exposed-to", help="only people recently in contact with a case element of this fraud type")
    p.add_argument("--within-hours", type=float, default=72.0, help="how recent that contact must be")
    p.add_argument("--name", default="", help="a name for the campaign (part of its id)")
    p.add_argument("--at", type=int, help="launch time, event time ms (default: the pipeline's clock)")
    p.add_argument("--dry-run", action="store_true", help="count the group, queue nothing")
    p.add_argument("--trends", action="store_true", help="print exposures by fraud type: what is on the rise")
    p.set_defaults(func=_campaign)
    p = sub.add_parser("explain", help="the audit trail of one warning: evidence, features, reasons, versions, "
                                       "dispatches, outcomes")
    p.add_argument("warning_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_explain)
    p = sub.add_parser("bulletin", help="the daily bulletin for oversight bodies (Markdown and HTML with a chart)")
    p.add_argument("--date", required=True, help="the first local day, YYYY-MM-DD")
    p.add_argument("--days", type=int, default=1, help="how many days (default 1)")
    p.add_argument("--out", help="folder (default: DATA/reports/bulletin-DATE)")
    p.set_defaults(func=_bulletin)
    _add_test_counterparts(sub)
    p = sub.add_parser("rpz", help="export the blocked fraud domains as a DNS RPZ zone file")
    p.add_argument("--out", help="zone file (default: standard output)")
    p.add_argument("--origin", default="rpz.yujing.local", help="the zone's name")
    p.add_argument("--at", type=int, help="event time (ms) at which blocks are judged active (default: now)")
    p.set_defaults(func=_rpz)
    p = sub.add_parser("demo", help="the main job: a simulated city streamed through the pipeline, warnings dispatched")
    p.add_argument("--residents", type=int, default=2000)
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=1, help="pipeline workers in one consumer group")
    p.add_argument("--attempts", type=float, default=60.0, help="fraud attempts per 10k residents per day")
    p.add_argument("--speed", type=float, default=0.0, help="× event time (0: as fast as Kafka takes the records)")
    p.add_argument("--keep", action="store_true", help="leave everything running; print the console and feed URLs")
    _add_shape_flags(p)
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `yujing` console script: an expected failure is one line on stderr and exit 2."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "worker":  # faust's own options (--web-port …) pass through, wherever they stand
        args.faust_args = [*extra, *args.faust_args]
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - only the expected ones are told in a line; the rest raise
        line = expected_failure(exc, load_settings)
        if line is None:
            raise
        print(f"yujing {args.command}: {line}", file=sys.stderr)
        return 2


def expected_failure(exc: BaseException, settings: Any) -> str | None:
    """A failure a user can act on, as one line (None: a bug, which keeps its traceback)."""
    from aiokafka.errors import KafkaConnectionError as AioKafkaConnectionError
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError
    from redis.exceptions import ConnectionError as RedisConnectionError

    from schemas.catalogue import tr

    if isinstance(exc, (KafkaConnectionError, KafkaTimeoutError, AioKafkaConnectionError)):
        return tr("Kafka does not answer at {where} ({error}); start it with `yujing stack up` or set KAFKA_BOOTSTRAP",
                  where=settings().kafka_bootstrap, error=exc)
    if isinstance(exc, RedisConnectionError):
        return tr("Redis does not answer at {where} ({error}); start it with `yujing stack up` or set REDIS_URL",
                  where=settings().redis_url, error=exc)
    if isinstance(exc, TimeoutError) and str(exc):
        return str(exc)
    return None


if __name__ == "__main__":
    sys.exit(main())
