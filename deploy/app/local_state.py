"""A worker's local table stores are used again after a restart only when it stopped cleanly.

faust writes a table update to the worker's local store (RocksDB) at once and to the table's changelog through
its producer buffer. A worker killed in between restarts with local state that the changelog never got; the fold
then finds a record read again already applied and writes nothing, so the changelog, which a takeover or a
rebuild reads, lacks it for good (the ten-kill fault test lost an incoming payment so). As Kafka Streams does
without its checkpoint file, a worker that did not stop cleanly rebuilds its stores from their changelogs.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)
CLEAN_STOP = "clean-stop"


def keep_if_clean(appdir: Path, tabledir: Path) -> bool:
    """Before the worker starts: keep the stores if the last stop was clean, else remove them; whether kept.

    The mark is removed either way, so that only a clean stop from now on leaves one."""
    mark = appdir / CLEAN_STOP
    if mark.exists():
        mark.unlink()
        return True
    if tabledir.exists():
        log.warning("The last stop was not clean: rebuilding the tables in %s from their changelogs", tabledir)
        shutil.rmtree(tabledir)
    return False


def mark_clean(appdir: Path) -> None:
    """The worker stopped cleanly: its stores hold nothing their changelogs lack."""
    appdir.mkdir(parents=True, exist_ok=True)
    (appdir / CLEAN_STOP).touch()
