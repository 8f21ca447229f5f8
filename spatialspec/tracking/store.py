"""A new local SQLite tracking store, created fast.

MLflow builds a new database by running its ~70 schema migrations, one statement at a time, each committed and synced
to disk: 2-4 s on this project's 2-core machines, once per study folder (a default study of 9 runs takes ~85 s).
:func:`create_sqlite_store` instead

1. builds an empty store once per machine and MLflow, SQLAlchemy and alembic versions (a template under
   ``$XDG_CACHE_HOME/spatialspec``, default ``~/.cache/spatialspec``): MLflow's own migrations
   (``mlflow.store.db.utils._initialize_tables``) run on a temporary file without per-statement syncs (~1 s), the
   file is synced once and moved into place;
2. copies that template to the new store's path (milliseconds): the same tables, indexes and schema version MLflow
   would have created; MLflow adds its default experiment when it opens the file, as for any existing store.

Every step writes a temporary file in the destination's folder and hard-links it into place, so a concurrent creator
(another process, or MLflow itself) is never overwritten and a crash leaves no partial store. If anything fails, the
store is left to MLflow to create, as without this module.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

__all__ = ["create_sqlite_store", "sqlite_path", "template_path"]

_SQLITE = "sqlite:///"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a local SQLite tracking URI (``sqlite:////abs/mlruns.db``), ``None`` for any other
    URI (a server, another database, an in-memory SQLite database)."""
    if not tracking_uri.startswith(_SQLITE):
        return None
    path = tracking_uri[len(_SQLITE):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def template_path() -> Path:
    """Where the empty store of the installed MLflow, SQLAlchemy and alembic versions is kept."""
    import alembic
    import mlflow
    import sqlalchemy

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spatialspec"
    return cache / f"mlflow-{mlflow.__version__}-sqlalchemy-{sqlalchemy.__version__}-alembic-{alembic.__version__}.db"


def create_sqlite_store(tracking_uri: str) -> bool:
    """Create the database of a local SQLite tracking URI if it does not exist yet (see the module docstring).

    Nothing is done for other URIs or an existing file.

    Returns:
        whether this call created the database.
    """
    path = sqlite_path(tracking_uri)
    if path is None or path.exists():
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            template = template_path()
            if not _is_store(template):
                template.unlink(missing_ok=True)  # an unreadable leftover: built again
                _place(template, _migrate)
            return _place(path, lambda temp: shutil.copyfile(template, temp))
        except OSError:  # no writable cache folder: build the store itself
            return _place(path, _migrate)
    except Exception as e:  # noqa: BLE001 - an optimisation only: MLflow creates the store itself
        warnings.warn(f"could not pre-create the MLflow store {path} ({e}); MLflow creates it", stacklevel=2)
        return False


def _is_store(path: Path) -> bool:
    """Whether ``path`` is a complete store (it has its schema version)."""
    if not path.is_file():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            return bool(connection.execute("SELECT version_num FROM alembic_version").fetchall())
    except sqlite3.Error:
        return False


def _place(path: Path, write: Callable[[Path], object]) -> bool:
    """Write ``path`` through a temporary file in its folder (``write(temp)``), synced and hard-linked into place;
    ``False`` if ``path`` appeared meanwhile (it is kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(temp)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        return True
    finally:
        for leftover in (temp, Path(f"{temp}-journal")):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass


def _migrate(temp: Path) -> None:
    """MLflow's schema migrations on a new database ``temp``, without a disk sync per statement."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    engine = sqlalchemy.create_engine(f"{_SQLITE}{temp}")

    @sqlalchemy.event.listens_for(engine, "connect")
    def _unsynced(connection, _record) -> None:  # this temporary file only: synced once, when complete
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.execute("PRAGMA journal_mode = MEMORY")
        cursor.close()

    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
