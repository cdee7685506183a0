"""Progress bars of the long commands (tqdm, on stderr): records streamed, and the steps of training and
evaluation."""
from __future__ import annotations

import sys
from typing import Any, Callable

from tqdm import tqdm


def _interval() -> float:
    return 0.2 if sys.stderr.isatty() else 10.0  # a log file gets a line now and then, not a stream of them


def record_bar(desc: str) -> tuple[tqdm, Callable[[int, Any], None]]:
    """A bar counting records without a known total, and the `progress(n, _)` callback that moves it to `n`."""
    bar = tqdm(desc=desc, unit=" records", unit_scale=True, mininterval=_interval(), file=sys.stderr)

    def progress(n: int, _: Any = None) -> None:
        bar.update(n - bar.n)

    return bar, progress


def step_bar(desc: str, total: int) -> tuple[tqdm, Callable[[str], None]]:
    """A bar of `total` named steps, and the `step(name)` callback that ticks it."""
    bar = tqdm(desc=desc, total=total, unit=" steps", mininterval=0.0, file=sys.stderr)

    def step(name: str) -> None:
        bar.set_postfix_str(name, refresh=False)
        bar.update(1)

    return bar, step
