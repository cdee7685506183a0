"""The model a worker scores with: the one in the data folder, trained there first when there is none."""
from __future__ import annotations

import fcntl
import logging

from deploy.config import Settings
from scorers.lab.training import train_model
from scorers.model import META_FILE, Model, load

log = logging.getLogger(__name__)


def worker_model(settings: Settings) -> Model:
    """The model in the data folder; where there is none, train the default one first (once, under a lock)."""
    folder = settings.model_path
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".model.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker starting now waits, then loads what the first trained
        if not (folder / META_FILE).exists():
            log.warning("no model in %s: training the default model first (a minute or two)", folder)
            train_model(folder)
    return load(folder)
