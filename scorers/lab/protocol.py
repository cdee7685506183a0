"""The honest protocol: which families a model learns from, which choose its thresholds, which judge it.

    training families   the model is fitted on their recorded moments (random draws from the space)
    tuning families     the tier thresholds are chosen on them, under a budget, in their worst case
    held-out families   the figures that count: every named family but the textbook one, and fresh draws

No family is in two of these, so a figure on a held-out family is on data neither the model nor the thresholds
were fitted to. A family is named by `scorers/lab/city/family.py` (`draw-K` for the K-th random one); its city's
seed is derived from its name, so the same name always gives the same city.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from scorers.lab.city import CityConfig
from scorers.lab.city.family import FAMILIES, family
from scorers.lab.evaluate import badness, evaluate
from scorers.lab.recording import Recording, record
from scorers.model import Model

TRAINING = ("draw-101", "draw-102", "draw-103", "draw-104", "draw-105")
TUNING = ("draw-201", "draw-202", "draw-203", "draw-204")
HELD_OUT = tuple(name for name in FAMILIES if name != "textbook") + ("draw-301", "draw-302")
LAB_ROOT = Path(__file__).resolve().parents[2]


Step = Callable[[str], None]  # told the name of each long step as it ends (a progress bar's tick)


def quiet(step: str) -> None:
    """No progress shown."""


@dataclass(frozen=True)
class Size:
    """How big the cities of one use are; `incidence` overrides the family's when set (training needs victims)."""

    residents: int
    days: int
    incidence: float | None = None


TRAIN_SIZE = Size(1200, 4, incidence=60.0)
TUNE_SIZE = Size(2000, 4, incidence=50.0)
HELD_OUT_SIZE = Size(3000, 4)


def city_of(name: str, size: Size) -> CityConfig:
    """The city of a family at a size: its seed derived from the family's name."""
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:6], 16)
    return CityConfig(residents=size.residents, days=size.days, seed=seed, family=family(name),
                      attempts_per_10k_per_day=size.incidence)


def _code_version() -> str:
    """A hash of the code a recording depends on: the schemas, the streaming core, the scorers and the city."""
    h = hashlib.sha256()
    for pkg in ("schemas", "streams", "scorers"):
        for path in sorted((LAB_ROOT / pkg).rglob("*.py")):
            if "lab" not in path.parts or "city" in path.parts or path.name == "recording.py":
                h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _record_cached(cfg: CityConfig, cache: Path | None) -> Recording:
    if cache is None:
        return record(cfg)
    key = hashlib.sha256(repr((cfg, _code_version())).encode()).hexdigest()[:20]
    path = cache / f"{cfg.family.name}-{key}.pickle"
    if path.exists():
        return pickle.loads(path.read_bytes())
    rec = record(cfg)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(rec))
    tmp.replace(path)
    return rec


def recordings(names: tuple[str, ...] | list[str], size: Size, cache: Path | None = None,
               workers: int | None = None, step: Step = quiet) -> dict[str, Recording]:
    """The recordings of these families at this size, in parallel processes (cached on disk when asked);
    `step` is told of each family recorded."""
    configs = [city_of(n, size) for n in names]
    workers = workers or min(len(configs), os.cpu_count() or 1)
    done: dict[str, Recording] = {}
    if workers <= 1 or len(configs) <= 1:
        for name, config in zip(names, configs):
            done[name] = _record_cached(config, cache)
            step(f"recorded {name}")
        return done
    with ProcessPoolExecutor(workers) as pool:
        futures = {pool.submit(_record_cached, c, cache): n for n, c in zip(names, configs)}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            step(f"recorded {futures[future]}")
    return {name: done[name] for name in names}


def check_held_out(meta: dict, names: list[str] | tuple[str, ...]) -> list[str]:
    """The families among `names` that the model or its thresholds were fitted to (an evaluation refuses them)."""
    fitted = set(meta.get("training_data", {}).get("families", [])) | set(meta.get("tuning", {}).get("families", []))
    return sorted(set(names) & fitted)


def judge(model: Model, names: tuple[str, ...] | list[str], size: Size = HELD_OUT_SIZE, cache: Path | None = None,
          allow_fitted: bool = False, step: Step = quiet) -> dict[str, dict]:
    """Model + tiers beside the naive baseline on each family (refusing families the model was fitted to),
    the worst family first."""
    fitted = check_held_out(model.meta, names)
    if fitted and not allow_fitted:
        raise ValueError(f"the model or its thresholds were fitted to {', '.join(fitted)}: not held out")
    recs = recordings(names, size, cache, step=step)
    per_family = {}
    for name, rec in recs.items():
        per_family[name] = evaluate(rec, model, model.tier_policy())
        step(f"evaluated {name}")
    return dict(sorted(per_family.items(), key=lambda kv: badness(kv[1])))
