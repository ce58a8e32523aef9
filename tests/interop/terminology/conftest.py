"""Fixtures of the terminology tests: the two hospitals' dictionaries and their known mapping."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from medledger.interop.terminology import DictItem, Mapping, read_dictionary, read_mappings
from medledger.records.fhir_shape import check_shape, resource_model

DATA = Path(__file__).resolve().parents[2] / "data" / "dictionaries"
MEMBER = "hosp-member-east"  # 示例区中医院
CENTRAL = "hosp-central"  # 示例市第一人民医院


def validate_parameters(obj: dict[str, Any]) -> None:
    """Check a Parameters resource as strictly as the records layer checks what it serves."""
    model = resource_model("Parameters")
    assert model is not None
    assert check_shape(obj, model, "Parameters") == []
    model.model_validate(obj)


@pytest.fixture(scope="session")
def member_items() -> list[DictItem]:
    """The member hospital's dictionary (GB18030 CSV, as Excel on Chinese Windows saves it)."""
    return read_dictionary((DATA / "member_east.csv").read_bytes())


@pytest.fixture(scope="session")
def central_items() -> list[DictItem]:
    """The central hospital's dictionary (UTF-8 CSV with BOM)."""
    return read_dictionary((DATA / "central.csv").read_bytes())


@pytest.fixture(scope="session")
def known_pairs() -> list[Mapping]:
    """The confirmed member → central mapping."""
    return read_mappings((DATA / "member_east_to_central.csv").read_bytes())


@pytest.fixture(scope="session")
def traps() -> list[dict[str, str]]:
    """Member items with a central item that must never be their top suggestion."""
    text = (DATA / "traps.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))
