"""Helpers shared by the access-directory tests: a migrated engine and a populated admin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from medledger.access.admin import AccessAdmin
from medledger.access.lockout import Event
from medledger.access.model import InstitutionKind, Role
from medledger.access.passwords import FAST, PasswordHasher
from medledger.crypto.registry import get_suite
from medledger.store import migrate
from medledger.store.engine import make_engine

ROOT_PW = "root-password-0001"
PW = "a-good-password-42"


@contextmanager
def migrated_engine(db_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    """A fresh engine at the newest schema: SQLite in ``tmp_path`` or the given PostgreSQL."""
    engine = make_engine(db_url or f"sqlite:///{tmp_path / 'access.db'}")
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def make_admin(engine: Engine, data_dir: Path, events: list[Event] | None = None) -> AccessAdmin:
    """An AccessAdmin with the cheap test hasher, collecting credential events in ``events``."""
    sink = events.append if events is not None else (lambda _e: None)
    return AccessAdmin.open(
        engine, data_dir, get_suite("intl-v1"), hasher=PasswordHasher(FAST), on_event=sink
    )


def populate(admin: AccessAdmin) -> None:
    """Two institutions, a bootstrapped group admin 'root', an institution admin 'ea'."""
    admin.add_institution("hosp-central", "市中心医院", InstitutionKind.CENTRAL, None)
    admin.add_user("root", "hosp-central", "Root", ROOT_PW, [(Role.GROUP_ADMIN, "*")], None)
    admin.add_institution("hosp-east", "东院", InstitutionKind.MEMBER, "root")
    admin.add_user("ea", "hosp-east", "East admin", PW, [(Role.INSTITUTION_ADMIN, "own")], "root")
