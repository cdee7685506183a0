"""A worker's local stores survive a restart only after a clean stop."""
from __future__ import annotations

from pathlib import Path

from deploy.app.local_state import keep_if_clean, mark_clean


def _stores(tmp_path: Path) -> tuple[Path, Path]:
    appdir, tabledir = tmp_path / "v1", tmp_path / "v1" / "tables"
    (tabledir / "persons-0.db").mkdir(parents=True)
    return appdir, tabledir


def test_after_a_clean_stop_the_stores_are_kept_and_the_mark_is_taken_away(tmp_path: Path) -> None:
    appdir, tabledir = _stores(tmp_path)
    mark_clean(appdir)
    assert keep_if_clean(appdir, tabledir) and (tabledir / "persons-0.db").exists()
    assert not keep_if_clean(appdir, tabledir)  # a crash after this start leaves no mark: not kept next time
    assert not tabledir.exists()


def test_after_a_crash_or_on_a_first_start_the_stores_are_rebuilt(tmp_path: Path) -> None:
    appdir, tabledir = _stores(tmp_path)
    assert not keep_if_clean(appdir, tabledir) and not tabledir.exists()
    assert not keep_if_clean(tmp_path / "new", tmp_path / "new" / "tables")  # nothing there: nothing to do
