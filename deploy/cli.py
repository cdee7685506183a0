"""The `yujing` command line: one entry point, one subcommand per job."""
from __future__ import annotations

import argparse
import sys

from deploy.config import load_settings


def _stack(args: argparse.Namespace) -> int:
    from deploy import stack

    settings = load_settings()
    try:
        if args.action == "up":
            for st in stack.up(settings):
                print(st.line())
            print(f"data folder: {settings.data_dir}")
        elif args.action == "down":
            stopped = stack.down(settings)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        else:
            statuses = stack.status(settings)
            for st in statuses:
                print(st.line())
            return 0 if all(st.answering for st in statuses) else 1
    except stack.StackError as exc:
        print(f"yujing stack {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


def _topics(args: argparse.Namespace) -> int:
    from deploy.topics import create_topics

    for name, state in create_topics(load_settings()):
        print(f"{state:<8} {name}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from streams.app import run_worker

    run_worker(load_settings(), args.faust_args)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from deploy.demo import run_demo
    from deploy.stack import StackError

    try:
        return run_demo(load_settings(), events=args.events, seed=args.seed, keep=args.keep)
    except StackError as exc:
        print(f"yujing demo: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="yujing", description="Streaming early warning against telecom fraud.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stack", help="start, stop or inspect the local Kafka + Redis stack")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=_stack)
    p = sub.add_parser("topics", help="create the contract's topics")
    p.set_defaults(func=_topics)
    p = sub.add_parser("worker", help="run a Faust worker (extra arguments go to faust's worker)")
    p.add_argument("faust_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_worker)
    p = sub.add_parser("demo", help="the main job: start everything and stream a sample through the pipeline")
    p.add_argument("--events", type=int, default=2000, help="signals to stream")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="leave the stack and the worker running")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `yujing` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
