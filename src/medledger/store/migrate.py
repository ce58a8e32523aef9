"""Apply Alembic migrations programmatically (``init`` and every open call the same way)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from medledger.errors import StorageError
from medledger.store.engine import READ_ONLY

_HERE = Path(__file__).parent


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op (and no write lock) when it is there."""
    cfg = _config()
    try:
        with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            if MigrationContext.configure(conn).get_current_revision() == head_revision():
                return
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise StorageError(
            f"cannot open the database {where}: {first_line(exc)}", db=where
        ) from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"schema migration failed: {first_line(exc)}") from exc


def first_line(exc: SQLAlchemyError) -> str:
    """Return the driver's own message, first line only (no SQLAlchemy boilerplate)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{orig.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")


def head_revision() -> str:
    """Return the newest revision id shipped with this release."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at, or None for an empty database."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        return MigrationContext.configure(conn).get_current_revision()
