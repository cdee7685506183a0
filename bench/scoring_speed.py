"""Single-event scoring speed: the exported weights beside scikit-learn's per-row predict_proba, same outputs.

    .venv/bin/python -m bench.scoring_speed --model var/data/model

Feature vectors are real ones, taken from a replay of a small simulated city. Reports events per second of
each way on one core, their ratio, and the largest difference between their probabilities.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from scorers.lab.protocol import Size, city_of
from scorers.lab.recording import record
from scorers.model import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    model = load(Path(args.model))
    x = record(city_of("textbook", Size(500, 4, incidence=150.0))).x
    rows = [x[i % len(x)] for i in range(args.rows)]
    fast = model.fast()

    t0 = time.perf_counter()
    fast_scores = [fast.score(x) for x in rows]
    fast_s = time.perf_counter() - t0

    n_slow = min(5_000, len(rows))  # per-row predict_proba is slow: a sample is enough for its rate
    t0 = time.perf_counter()
    slow_scores = [model.risk.predict_proba([x])[0, 1] for x in rows[:n_slow]]
    slow_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    batch = model.risk.predict_proba(np.asarray(rows))[:, 1]
    batch_s = time.perf_counter() - t0
    print(json.dumps({
        "rows": args.rows,
        "exported_weights_scores_per_s": round(args.rows / fast_s),
        "sklearn_per_row_scores_per_s": round(n_slow / slow_s),
        "sklearn_batch_scores_per_s": round(args.rows / batch_s),
        "ratio_exported_to_per_row": round((args.rows / fast_s) / (n_slow / slow_s), 1),
        "max_abs_difference_vs_per_row": float(max(abs(a - b) for a, b in zip(fast_scores, slow_scores))),
        "max_abs_difference_vs_batch": float(np.max(np.abs(np.asarray(fast_scores) - batch))),
    }, indent=2))


if __name__ == "__main__":
    main()
