"""A node's data directory: where its config, keys and (embedded) database live."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medledger.errors import LedgerMissing, MalformedDocument

CONFIG_FORMAT = "medledger-node/1"
CONFIG_FILE = "medledger.json"
KEY_FILE = "node.key"
TRUST_FILE = "keys.json"
SQLITE_FILE = "ledger.db"
HEAD_FILE = "head.json"
DB_ENV = "MEDLEDGER_DB"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Settings fixed at init (chain, suite) and tunables (block cut, entry cap)."""

    chain: str
    suite: str
    node: str
    db: str | None = None  # None: the embedded SQLite file in the data directory
    block_max_entries: int = 2000
    block_max_wait_ms: float = 10.0
    max_entry_bytes: int = 64 * 1024

    def to_json(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, **asdict(self)}


def db_url(data_dir: Path, config: NodeConfig) -> str:
    """Return the database URL: the config's, else $MEDLEDGER_DB, else the embedded SQLite file.

    The same rule at init and at every open, so a chain is never created in one database while
    later opens look in another. $MEDLEDGER_DB is for keeping a password out of the config file:
    init without --db, with the variable set.
    """
    return config.db or os.environ.get(DB_ENV) or f"sqlite:///{data_dir / SQLITE_FILE}"


def write_config(data_dir: Path, config: NodeConfig) -> None:
    """Write the config file (mode 0600: a PostgreSQL URL may hold a password)."""
    path = data_dir / CONFIG_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(config.to_json(), fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_config(data_dir: Path) -> NodeConfig:
    """Read a data directory's config; raise LedgerMissing if there is no ledger there."""
    path = data_dir / CONFIG_FILE
    if not path.exists():
        raise LedgerMissing(
            f"no ledger in {data_dir} (missing {CONFIG_FILE}); run `medledger init --data "
            f"{data_dir}` first",
            path=str(data_dir),
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MalformedDocument(
            f"cannot read {path}: {exc}", field="config", value=str(path), expected="JSON"
        ) from exc
    if not isinstance(raw, dict) or raw.get("format") != CONFIG_FORMAT:
        raise MalformedDocument(
            f"{path} is not a MedLedger node config",
            field="config.format",
            value=raw.get("format") if isinstance(raw, dict) else raw,
            expected=CONFIG_FORMAT,
        )
    fields = {k: v for k, v in raw.items() if k != "format"}
    try:
        config = NodeConfig(**fields)
    except TypeError as exc:
        raise MalformedDocument(
            f"{path}: {exc}", field="config", value=sorted(fields), expected="known settings"
        ) from exc
    check_tunables(config, where=str(path))
    return config


def check_tunables(config: NodeConfig, *, where: str = "config") -> None:
    """Raise MalformedDocument unless every setting has a usable type and range."""
    rules: list[tuple[str, object, bool, str]] = [
        ("chain", config.chain, isinstance(config.chain, str) and bool(config.chain), "chain id"),
        ("suite", config.suite, isinstance(config.suite, str), "suite name"),
        ("node", config.node, isinstance(config.node, str) and bool(config.node), "node name"),
        ("db", config.db, config.db is None or isinstance(config.db, str), "URL or null"),
        (
            "block_max_entries",
            config.block_max_entries,
            _int_at_least(config.block_max_entries, 1),
            "integer >= 1",
        ),
        (
            "block_max_wait_ms",
            config.block_max_wait_ms,
            isinstance(config.block_max_wait_ms, (int, float))
            and not isinstance(config.block_max_wait_ms, bool)
            and config.block_max_wait_ms >= 0,
            "number >= 0",
        ),
        (
            "max_entry_bytes",
            config.max_entry_bytes,
            _int_at_least(config.max_entry_bytes, 256),
            "integer >= 256",
        ),
    ]
    for name, value, ok, expected in rules:
        if not ok:
            raise MalformedDocument(
                f"{where}: setting {name} is {value!r}", field=name, value=value, expected=expected
            )


def _int_at_least(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low
