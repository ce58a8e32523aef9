"""Specimen download for a performing LIS (送检条码下载) and specimen labels, at /api/v1/interop.

- ``GET /api/v1/interop/specimens?performer=&since=&status=&_count=&_page_token=``: one page
  of download rows (:mod:`medledger.interop.specimens`) as ``{"rows": [...],
  "next_page_token": str | null, "next": url | null}``, plus a ``Link: <…>; rel="next"``
  header while there is more;
- ``GET /api/v1/interop/specimens/{barcode}/label.svg`` and ``label.png``: the Code 128 label
  of the specimen with that group barcode: the patient's pseudonym, the item names (the
  performer's where translated), the sender institution's name and the collection time.

A barcode that does not exist and one the caller may not read are the same 404. Responses
carry ``Cache-Control: no-store``: they hold pseudonyms and order data.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from functools import partial
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from medledger.access.directory import Directory
from medledger.api.errors import FastJSONResponse
from medledger.api.fhir import guard_of
from medledger.errors import InputError
from medledger.interop.barcode.label import LabelFormat, render_label
from medledger.interop.specimens import (
    DEFAULT_COUNT,
    STATUSES,
    DownloadRow,
    SpecimenQuery,
    label_time,
    list_specimens,
    row_for_barcode,
)
from medledger.records.guard import Guard
from medledger.records.paging import page_count, since_instant
from medledger.records.service import RecordService

__all__ = ["PARAMS", "PREFIX", "decode_cursor", "encode_cursor", "parse_query", "router"]

PREFIX = "/api/v1/interop/specimens"
_NO_STORE = {"Cache-Control": "no-store"}
_MEDIA: dict[LabelFormat, str] = {"svg": "image/svg+xml", "png": "image/png"}
PARAMS = ("performer", "since", "status", "_count", "_page_token")
_INSTITUTION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]")
_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def router(service: RecordService, *, max_body: int) -> APIRouter:
    """Build the specimen download and label routes over ``service``.

    ``max_body`` is taken for the signature every router shares; these routes read no body.
    """
    r = APIRouter(prefix=PREFIX, tags=["interop"])
    directory = Directory(service.store.engine)
    inline = service.store.engine.dialect.name == "sqlite"

    async def _run(fn: Any, *args: Any) -> Any:
        """Inline on SQLite (a local file); on a thread where each query is a round trip.
        (Labels always render on a thread: drawing a PNG takes milliseconds of CPU.)"""
        if inline:
            return fn(*args)
        return await anyio.to_thread.run_sync(partial(fn, *args))

    def institution_name(inst: str) -> str:
        """The institution's display name from the access directory (its id if it has none)."""
        found = directory.get_institution(inst)
        return found.name if found is not None and found.name else inst

    def label(guard: Guard, barcode: str, fmt: LabelFormat) -> bytes:
        """Render the label of the specimen the caller may read (NotFound otherwise)."""
        row: DownloadRow = row_for_barcode(service, barcode, guard)
        return render_label(
            row.barcode,
            pseudonym=row.patient_pseudonym,
            items=[i.performer_name or i.name or i.code or "" for i in row.items],
            institution_name=institution_name(row.sender),
            collected=label_time(row.collected),
            fmt=fmt,
        )

    @r.get("", response_class=FastJSONResponse)
    async def download(request: Request) -> FastJSONResponse:
        """List the specimens to download, oldest change first (see the module docstring)."""
        params = list(request.query_params.multi_items())
        query = parse_query(params)
        page = await _run(list_specimens, service, guard_of(request), query)
        headers = dict(_NO_STORE)
        next_url = token = None
        if page.after is not None:
            token = encode_cursor(*page.after)
            kept = [(k, v) for k, v in params if k != "_page_token"]
            kept.append(("_page_token", token))
            next_url = f"{str(request.base_url).rstrip('/')}{PREFIX}?{urlencode(kept)}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        body = {
            "rows": [row.to_json() for row in page.rows],
            "next_page_token": token,
            "next": next_url,
        }
        return FastJSONResponse(body, headers=headers)

    @r.get("/{barcode}/label.svg", response_class=Response)
    async def label_svg(barcode: str, request: Request) -> Response:
        """The specimen's label as SVG (sizes in mm; text in a CJK font family)."""
        data = await anyio.to_thread.run_sync(label, guard_of(request), barcode, "svg")
        return Response(data, media_type=_MEDIA["svg"], headers=_NO_STORE)

    @r.get("/{barcode}/label.png", response_class=Response)
    async def label_png(barcode: str, request: Request) -> Response:
        """The specimen's label as a 300 dpi PNG."""
        data = await anyio.to_thread.run_sync(label, guard_of(request), barcode, "png")
        return Response(data, media_type=_MEDIA["png"], headers=_NO_STORE)

    return r


def parse_query(params: Sequence[tuple[str, str]]) -> SpecimenQuery:
    """Check the download parameters (each at most once; ``status`` a comma-separated list)."""
    seen: dict[str, str] = {}
    for name, value in params:
        if name not in PARAMS:
            raise InputError(
                f"unknown parameter {name!r}", field=name, value=value, expected=", ".join(PARAMS)
            )
        if name in seen:
            raise InputError(
                f"parameter {name!r} given twice", field=name, value=value,
                expected="at most once (status takes a comma-separated list)",
            )  # fmt: skip
        seen[name] = value
    performer = seen.get("performer")
    if performer is not None and not _INSTITUTION.fullmatch(performer):
        raise InputError(
            "performer is not an institution id", field="performer", value=performer,
            expected="an institution id such as hosp-central",
        )  # fmt: skip
    since = None
    if "since" in seen:
        try:
            since = since_instant(seen["since"])
        except InputError as exc:
            raise InputError(
                "since is not an RFC 3339 instant", field="since", value=seen["since"],
                expected="an instant with a time zone, e.g. 2026-11-23T08:00:00+08:00",
            ) from exc  # fmt: skip
    statuses: tuple[str, ...] = ()
    if "status" in seen:
        statuses = tuple(dict.fromkeys(s.strip() for s in seen["status"].split(",")))
        if not all(s in STATUSES for s in statuses):
            raise InputError(
                "unknown order status", field="status", value=seen["status"],
                expected="a comma-separated list of " + ", ".join(STATUSES),
            )  # fmt: skip
    count = page_count(seen["_count"]) if "_count" in seen else DEFAULT_COUNT
    after = decode_cursor(seen["_page_token"]) if "_page_token" in seen else None
    return SpecimenQuery(performer, since, statuses, count, after)


def encode_cursor(ts: str, rid: str) -> str:
    """Return the opaque page token of the keyset position (lastUpdated, id)."""
    raw = json.dumps([ts, rid], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[str, str]:
    """Return the keyset position a page token stands for; InputError for any other token."""
    try:
        if len(token) > 200:
            raise ValueError(len(token))
        ts, rid = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not (isinstance(ts, str) and _TS.fullmatch(ts)):
            raise ValueError(ts)
        if not (isinstance(rid, str) and _ID.fullmatch(rid)):
            raise ValueError(rid)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InputError(
            "_page_token is not one this server issued", field="_page_token", value=token,
            expected="the next_page_token of a previous page",
        ) from exc  # fmt: skip
    return ts, rid
