"""Named counters in ``interop_sequences``, incremented atomically on SQLite and PostgreSQL.

One statement does the work on both backends: ``INSERT … ON CONFLICT (name) DO UPDATE SET
value = value + :count RETURNING value``. PostgreSQL makes a concurrent upsert of the same name
wait for the first and then update the committed row; SQLite has a single writer (and this
process queues its writers on :func:`medledger.store.engine.begin_write`), so no two callers
can ever see the same value.

:func:`allocate` draws specimen barcodes from these counters: one counter per institution and
day, named like ``barcode/12/20261123``.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from medledger.errors import InputError, StateError, StorageError
from medledger.interop.barcode.scheme import BarcodeScheme, format_barcode
from medledger.store.engine import begin_write
from medledger.store.schema_interop import interop_sequences

__all__ = ["MAX_NAME", "SequenceSource", "Sequences", "allocate", "sequence_name"]

MAX_NAME = 128  # the column's width


class SequenceSource(Protocol):
    """Anything that hands out the next value of a named counter (as :class:`Sequences`)."""

    def next(self, name: str, count: int = 1) -> int:
        """Reserve ``count`` values of counter ``name`` and return the first."""
        ...


class Sequences:
    """Named counters that start at 1 and never hand out a value twice."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = sqlite if engine.dialect.name == "sqlite" else postgresql

    def next(self, name: str, count: int = 1) -> int:
        """Reserve ``count`` consecutive values of counter ``name`` and return the first.

        The caller owns ``first, first + 1, …, first + count − 1``. Requires ``count ≥ 1``.
        """
        _check_name(name)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise InputError(
                "a sequence can only advance by a positive count",
                field="count",
                value=count,
                expected="an integer ≥ 1",
            )
        insert = self._dialect.insert(interop_sequences).values(name=name, value=count)
        stmt = insert.on_conflict_do_update(
            index_elements=[interop_sequences.c.name],
            set_={"value": interop_sequences.c.value + insert.excluded.value},
        ).returning(interop_sequences.c.value)
        try:
            with begin_write(self._engine) as conn:
                last = int(conn.execute(stmt).scalar_one())
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot advance sequence: {type(exc).__name__}", field="name", value=name
            ) from exc
        return last - count + 1

    def current(self, name: str) -> int:
        """Return the last value handed out for ``name`` (0 if none yet)."""
        _check_name(name)
        try:
            with self._engine.connect() as conn:
                value = conn.execute(
                    select(interop_sequences.c.value).where(interop_sequences.c.name == name)
                ).scalar_one_or_none()
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot read sequence: {type(exc).__name__}", field="name", value=name
            ) from exc
        return 0 if value is None else int(value)


def sequence_name(scheme: BarcodeScheme, institution: str, day: date) -> str:
    """The counter name of one institution's barcodes on one day, e.g. ``barcode/12/20261123``."""
    return f"barcode/{scheme.code_of(institution)}/{day:%Y%m%d}"


def allocate(scheme: BarcodeScheme, sequences: SequenceSource, institution: str, day: date) -> str:
    """Allocate the next barcode of ``institution`` on ``day`` (the day as the hospital sees it).

    Raises :class:`InputError` for an institution without a code and :class:`StateError` once
    the day's sequence is exhausted (numbers never wrap around).
    """
    seq = sequences.next(sequence_name(scheme, institution, day))
    if seq > scheme.max_seq:
        raise StateError(
            f"barcode sequence of {institution} for {day.isoformat()} is exhausted: "
            f"all {scheme.max_seq} numbers are used",
            field="seq",
            value=seq,
            expected=f"at most {scheme.max_seq} barcodes a day; widen {{seq}} in the template",
        )
    return format_barcode(scheme, institution, day, seq)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise InputError(
            "sequence name must be non-empty text",
            field="name",
            value=name,
            expected=f"1 to {MAX_NAME} characters",
        )
