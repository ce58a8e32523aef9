"""The neutral model as JSON: how a SQL-view row or a FHIR-born message is journalled.

A message that did not arrive as HL7 bytes is journalled as the UTF-8 JSON of its model, so
it can be processed again from the journal (held, quarantined, a crash before its outcome)
exactly like an HL7 message is re-read from its bytes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from medledger.errors import InputError
from medledger.interop.model import (
    Coded,
    ImageLink,
    OrderItem,
    Patient,
    Requisition,
    Result,
    ResultItem,
    Value,
)

__all__ = ["model_from_json", "model_to_json"]


def model_to_json(model: Requisition | Result) -> bytes:
    """Stable JSON bytes of a model (keys sorted), tagged with its kind."""
    kind = "requisition" if isinstance(model, Requisition) else "result"
    body = {"kind": kind, "model": dataclasses.asdict(model)}
    return json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")


def model_from_json(raw: bytes) -> Requisition | Result:
    """The model ``model_to_json`` wrote; InputError if the bytes are not one."""
    try:
        body = json.loads(raw.decode("utf-8"))
        data = body["model"]
        if body["kind"] == "requisition":
            return _requisition(data)
        if body["kind"] == "result":
            return _result(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"not a journalled model: {type(exc).__name__}",
            field="raw",
            expected="JSON written by model_to_json",
        ) from None
    raise InputError(
        "unknown model kind", field="kind", value=body.get("kind"), expected="requisition or result"
    )


def _coded(d: dict[str, Any] | None) -> Coded | None:
    return None if d is None else Coded(**d)


def _requisition(d: dict[str, Any]) -> Requisition:
    items = tuple(
        OrderItem(
            **{
                **i,
                "code": Coded(**i["code"]),
                "specimen_type": _coded(i.get("specimen_type")),
            }
        )
        for i in d["items"]
    )
    return Requisition(**{**d, "patient": Patient(**d["patient"]), "items": items})


def _result(d: dict[str, Any]) -> Result:
    items = tuple(
        ResultItem(
            **{
                **i,
                "code": Coded(**i["code"]),
                "value": None
                if i.get("value") is None
                else Value(**{**i["value"], "code": _coded(i["value"].get("code"))}),
            }
        )
        for i in d.get("items", [])
    )
    images = tuple(ImageLink(**x) for x in d.get("images", []))
    return Result(
        **{
            **d,
            "patient": Patient(**d["patient"]),
            "code": Coded(**d["code"]),
            "items": items,
            "images": images,
        }
    )
