"""`yujing shadow`: a candidate model and tier policy run on the live inputs, beside the running ones, dispatching
nothing; `shadow report` compares what it would have decided with what the live pipeline decided; `shadow promote`
makes it the model the workers load, and records who did so.

A shadow run reads the registry, then every retained record of the source topics in event-time order, through the
pipeline's own logic in one process (streams/local.py: the same decisions a live worker takes on the same input,
as tests/integration/test_scale_out.py checks), and writes the decisions to `yujing.shadow-decisions`. It rebuilds
its state from the retained input each run instead of following the topics, so a run covers what the topics hold.
"""
from __future__ import annotations

import argparse
import getpass
import json
import shutil
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import msgspec

from deploy.config import Settings, load_settings
from schemas.catalogue import tr
from schemas.records import is_progress
from schemas.topics import SHADOW_TOPIC
from schemas.units import LOCAL

PROMOTIONS = "promotions.jsonl"


def add_shadow_command(sub: Any) -> None:
    """The `shadow` subcommand: a run (no action), `report` and `promote`."""
    p = sub.add_parser("shadow", help="run a candidate model and policy beside the live ones, dispatching nothing; "
                                      "`shadow report` compares; `shadow promote` makes it live")
    p.add_argument("--model", help="the candidate's model folder (for a run)")
    p.add_argument("--policy", help="the candidate's tier policy file (default: the one tuned with the model)")
    actions = p.add_subparsers(dest="action")
    r = actions.add_parser("report", help="the candidate's decisions against the live ones over a period")
    r.add_argument("--since", help="first local day, YYYY-MM-DD (default: all retained)")
    r.add_argument("--days", type=int, default=1, help="days from --since (default 1)")
    r.add_argument("--candidate", help="model/policy versions to compare (default: the latest shadow run's)")
    r.add_argument("--json", action="store_true")
    m = actions.add_parser("promote", help="make a model (and policy) the one workers load; records who and which")
    m.add_argument("--model", dest="promote_model", required=True, help="the candidate's model folder")
    m.add_argument("--policy", dest="promote_policy", help="its tier policy file (default: the one beside it)")
    m.add_argument("--by", default=getpass.getuser(), help="who promotes (default: the login name)")
    m.add_argument("--note", default="", help="why: e.g. the report it was judged on")
    p.set_defaults(func=shadow)


def shadow(args: argparse.Namespace) -> int:
    """Run one `yujing shadow` action."""
    settings = load_settings()
    if args.action == "report":
        since, until = _period(args.since, args.days)
        report = shadow_report(settings, since, until, args.candidate)
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) if args.json else render_report(report))
        return 0
    if args.action == "promote":
        print(promote(settings, Path(args.promote_model), Path(args.promote_policy) if args.promote_policy else None,
                      args.by, args.note))
        return 0
    if not args.model:
        raise SystemExit(tr("yujing shadow: --model DIR names the candidate to run"))
    counts = shadow_run(settings, Path(args.model), Path(args.policy) if args.policy else None)
    print(tr("shadow run of {version}: {records} records read, {decisions} decisions written to {topic}",
             version=counts["version"], records=counts["records"], decisions=counts["decisions"], topic=SHADOW_TOPIC))
    return 0


def _period(since: str | None, days: int) -> tuple[int | None, int | None]:
    if since is None:
        return None, None
    start = datetime.combine(date.fromisoformat(since), datetime.min.time(), LOCAL)
    return int(start.timestamp() * 1000), int((start + timedelta(days=days)).timestamp() * 1000)


def shadow_run(settings: Settings, model_dir: Path, policy_file: Path | None = None,
               on_record: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Replay the retained inputs through the candidate and write its decisions to `yujing.shadow-decisions`."""
    from deploy.app.options import policies
    from schemas.decode import InvalidRecord, decode_input
    from schemas.topics import SOURCE_TOPICS
    from scorers.ages import Ages
    from scorers.decide import Decider
    from scorers.model import load
    from scorers.tiers import TierPolicy
    from streams.kafka_io import produce, read_to_end
    from streams.local import LocalPipeline

    model = load(model_dir)
    policy = TierPolicy.load(policy_file) if policy_file is not None else model.tier_policy()
    pipeline = LocalPipeline(*policies(settings))
    pipeline.processor.on_person = Decider(model, policy, Ages(pipeline.processor.lookup))
    read = 0
    for m in read_to_end(settings, settings.topic("registry.subjects")):  # the registry first, as it stands
        read += 1
        if m.value is None:
            pipeline.erase(m.key.decode(errors="replace"))
            continue
        try:
            pipeline.feed("registry.subjects", decode_input("registry.subjects", m.value))
        except (InvalidRecord, msgspec.DecodeError):
            continue  # the live pipeline dead-letters it
    timeline: list[tuple[int, int, int, int, str, msgspec.Struct]] = []
    for rank, logical in enumerate(SOURCE_TOPICS):
        for m in read_to_end(settings, settings.topic(logical)):
            read += 1
            on_record()
            if is_progress(m.key):
                continue
            try:
                rec = decode_input(logical, m.value)
            except (InvalidRecord, msgspec.DecodeError):
                continue
            timeline.append((rec.ts, rank, m.partition, m.offset, logical, rec))  # type: ignore[attr-defined]
    timeline.sort(key=lambda t: t[:4])
    for *_, logical, rec in timeline:
        pipeline.feed(logical, rec)
    pipeline.finish()
    decisions = [o.value for o in pipeline.sent["yujing.decisions"]]
    produce(settings, SHADOW_TOPIC, [(d.person.encode(), msgspec.json.encode(d)) for d in decisions])  # type: ignore[attr-defined]
    return {"version": f"{model.version}/{policy.version}", "records": read, "decisions": len(decisions)}


def shadow_report(settings: Settings, since: int | None, until: int | None, candidate: str | None = None) -> Any:
    """The report of a period: the live decisions, the candidate's (the latest run's by default), the outcomes."""
    from ops.shadow import compare
    from schemas.decode import InvalidRecord, decode_input
    from schemas.internal import Decision
    from streams.kafka_io import read_to_end

    def read(logical: str) -> list[Any]:
        out = []
        for m in read_to_end(settings, settings.topic(logical)):
            if is_progress(m.key):  # the decider's progress on yujing.decisions
                continue
            try:
                out.append(msgspec.json.decode(m.value, type=Decision) if logical != "outcomes"
                           else decode_input(logical, m.value))
            except (InvalidRecord, msgspec.DecodeError):
                continue  # what the pipeline dead-letters (an outcome) or never wrote (a decision)
        return out

    shadow = read(SHADOW_TOPIC)
    chosen = candidate or (f"{shadow[-1].model_version}/{shadow[-1].policy_version}" if shadow else "")
    mine = [d for d in shadow if f"{d.model_version}/{d.policy_version}" == chosen]
    if not mine:
        raise SystemExit(tr("yujing shadow report: no shadow decisions of {candidate}; run `yujing shadow --model "
                            "DIR` first", candidate=chosen or "–"))
    return compare(read("yujing.decisions"), mine, read("outcomes"), since, until)


def render_report(report: Any) -> str:
    """The report as lines for an operator."""
    def line(name: str, side: Any) -> str:
        tiers = " ".join(f"{t} {n}" for t, n in side.by_tier.items())
        precision = "–" if side.precision is None else f"{side.precision:.2f}"
        return tr("{name}: {version}: {warned} warned ({tiers}), {stops} stop-payments, precision {precision} on "
                  "{labelled} labelled", name=name, version=side.version, warned=side.warned, tiers=tiers,
                  stops=side.stops, precision=precision, labelled=side.labelled)

    return "\n".join([
        line(tr("live"), report.live), line(tr("candidate"), report.candidate),
        tr("warned by the candidate only: {n}; by the live side only: {m}; another tier: {k}",
           n=len(report.added), m=len(report.removed), k=len(report.changed_tier)),
        tr("stop-payments the candidate adds: {n}; drops: {m}", n=len(report.stops_added),
           m=len(report.stops_removed))])


def promote(settings: Settings, model_dir: Path, policy_file: Path | None, by: str, note: str = "") -> str:
    """Make the candidate the model workers load (on their next start); the one it replaces is kept beside it,
    and `promotions.jsonl` records who promoted which model and policy, when and why."""
    from scorers.model import META_FILE, POLICY_FILE_NAME, load

    model = load(model_dir)  # refuses an artifact this code cannot score with
    live = settings.model_path
    staged = live.with_name(f"{live.name}.staging")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(model_dir, staged)
    if policy_file is not None:
        shutil.copy(policy_file, staged / POLICY_FILE_NAME)
    policy_version = load(staged).tier_policy().version
    previous = None
    if live.exists():
        meta = live / META_FILE
        previous = json.loads(meta.read_text()).get("model_version") if meta.exists() else None
        live.rename(live.with_name(f"{live.name}.replaced-{int(time.time())}"))
    staged.rename(live)
    entry = {"ts": int(time.time() * 1000), "by": by, "model_version": model.version,
             "policy_version": policy_version, "from": str(model_dir.resolve()), "replaced": previous, "note": note}
    with open(live.parent / PROMOTIONS, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return tr("{by} promoted {model}/{policy} (replacing {previous}); workers load it when they next start",
              by=by, model=model.version, policy=policy_version, previous=previous or "–")
