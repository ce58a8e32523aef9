"""Sequences on SQLite and PostgreSQL: atomic under threads; barcode allocation on top of them."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import Engine

from medledger.errors import InputError, StateError
from medledger.interop.barcode.scheme import BarcodeScheme, parse, scheme_from_mapping
from medledger.interop.barcode.sequences import Sequences, allocate, sequence_name

CODES = {"hosp-central": "11", "hosp-member-east": "12"}
DAY = date(2026, 11, 23)


def test_threads_never_get_the_same_value(engine: Engine) -> None:
    """8 threads × 200 allocations of one counter give exactly 1..1600, no value twice."""
    seqs = Sequences(engine)
    got: list[list[int]] = [[] for _ in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(out: list[int]) -> None:
        try:
            start.wait()
            out.extend(seqs.next("barcode/12/20261123") for _ in range(200))
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(out,)) for out in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    values = [v for out in got for v in out]
    assert sorted(values) == list(range(1, 1601))
    assert all(out == sorted(out) for out in got)  # each thread sees its own values rise
    assert seqs.current("barcode/12/20261123") == 1600


def test_threads_allocating_barcodes_get_distinct_ones(engine: Engine) -> None:
    """Concurrent barcode allocation for two institutions yields unique, parseable barcodes."""
    scheme = BarcodeScheme(institutions=CODES)
    seqs = Sequences(engine)
    got: list[str] = []
    lock = threading.Lock()

    def work(inst: str) -> None:
        mine = [allocate(scheme, seqs, inst, DAY) for _ in range(50)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=work, args=(i,)) for i in sorted(CODES) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(set(got)) == 200
    per_inst = {i: sorted(parse(scheme, v).seq for v in got if parse(scheme, v).institution == i)
                for i in CODES}  # fmt: skip
    assert per_inst == {i: list(range(1, 101)) for i in CODES}


def test_block_reservation_and_independent_names(sqlite_engine: Engine) -> None:
    """next(name, count) reserves a block and returns its first value; names do not interact."""
    seqs = Sequences(sqlite_engine)
    assert seqs.current("a") == 0
    assert seqs.next("a") == 1
    assert seqs.next("a", 10) == 2  # 2..11
    assert seqs.next("a") == 12
    assert seqs.next("b") == 1
    assert (seqs.current("a"), seqs.current("b")) == (12, 1)


@pytest.mark.parametrize(("name", "count"), [("", 1), ("x" * 129, 1), ("a", 0), ("a", -3)])
def test_bad_arguments_are_input_errors(sqlite_engine: Engine, name: str, count: int) -> None:
    """An empty or over-long name, or a count below 1, raises InputError naming the field."""
    with pytest.raises(InputError) as info:
        Sequences(sqlite_engine).next(name, count)
    assert info.value.field in ("name", "count")


def test_sequence_restarts_each_day_and_per_institution(sqlite_engine: Engine) -> None:
    """Each institution and each day has its own sequence, starting at 1."""
    scheme = BarcodeScheme(institutions=CODES)
    seqs = Sequences(sqlite_engine)
    first = allocate(scheme, seqs, "hosp-member-east", DAY)
    second = allocate(scheme, seqs, "hosp-member-east", DAY)
    other_inst = allocate(scheme, seqs, "hosp-central", DAY)
    next_day = allocate(scheme, seqs, "hosp-member-east", date(2026, 11, 24))
    assert [parse(scheme, v).seq for v in (first, second, other_inst, next_day)] == [1, 2, 1, 1]
    assert sequence_name(scheme, "hosp-member-east", DAY) == "barcode/12/20261123"


def test_sequence_overflow_is_a_state_error_not_a_wrap(sqlite_engine: Engine) -> None:
    """With a one-digit sequence the tenth barcode of a day raises StateError; 1..9 are unique."""
    scheme = scheme_from_mapping(
        {"template": "{inst}{yy}{mm}{dd}{seq:01d}{check}", "institutions": CODES}
    )
    seqs = Sequences(sqlite_engine)
    values = [allocate(scheme, seqs, "hosp-central", DAY) for _ in range(9)]
    assert [parse(scheme, v).seq for v in values] == list(range(1, 10))
    for _ in range(2):  # and it stays exhausted: it never wraps to 0 or 1
        with pytest.raises(StateError) as info:
            allocate(scheme, seqs, "hosp-central", DAY)
        assert info.value.details["expected"].startswith("at most 9 barcodes a day")
    assert parse(scheme, allocate(scheme, seqs, "hosp-central", date(2026, 11, 24))).seq == 1


def test_unknown_institution_allocates_nothing(sqlite_engine: Engine) -> None:
    """Allocating for an institution without a code raises InputError and uses no number."""
    scheme = BarcodeScheme(institutions=CODES)
    seqs = Sequences(sqlite_engine)
    with pytest.raises(InputError) as info:
        allocate(scheme, seqs, "hosp-unknown", DAY)
    assert info.value.field == "institution"
    assert parse(scheme, allocate(scheme, seqs, "hosp-central", DAY)).seq == 1
