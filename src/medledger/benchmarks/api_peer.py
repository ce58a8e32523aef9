"""The ``bench api`` peer: the same URLs on the same stack (FastAPI, uvicorn), from a dict.

No validation, no encryption, no database, no ledger: what is left is the cost of HTTP, JSON and
the framework on this machine, so the ratio to it isolates the price of MedLedger's guarantees.
Run as ``python -m medledger.benchmarks.api_peer --port N``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

FHIR_JSON = "application/fhir+json"


def create_peer() -> FastAPI:
    app = FastAPI()
    store: dict[tuple[str, str], dict[str, Any]] = {}
    by_type: dict[str, list[dict[str, Any]]] = {}
    ids = itertools.count(1)

    def put(rtype: str, rid: str, body: dict[str, Any]) -> dict[str, Any]:
        body["id"] = rid
        if (rtype, rid) not in store:
            by_type.setdefault(rtype, []).append(body)
        store[(rtype, rid)] = body
        return body

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.post("/fhir/R4")
    async def bundle(request: Request) -> JSONResponse:
        doc = json.loads(await request.body())
        out = []
        for entry in doc["entry"]:
            rtype = entry["resource"]["resourceType"]
            rid = f"p{next(ids)}"
            put(rtype, rid, entry["resource"])
            out.append(
                {"response": {"status": "201 Created", "location": f"{rtype}/{rid}/_history/1"}}
            )
        return JSONResponse(
            {"resourceType": "Bundle", "type": "transaction-response", "entry": out}
        )

    @app.get("/fhir/R4/{rtype}/{rid}")
    def read(rtype: str, rid: str) -> Response:
        body = store.get((rtype, rid))
        if body is None:
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=404)
        return JSONResponse(body, media_type=FHIR_JSON)

    @app.get("/fhir/R4/{rtype}")
    def search(rtype: str, request: Request) -> JSONResponse:
        count = int(request.query_params.get("_count", "20"))
        hits = by_type.get(rtype, [])[-count:]
        entries = [{"resource": r, "search": {"mode": "match"}} for r in hits]
        return JSONResponse(
            {"resourceType": "Bundle", "type": "searchset", "entry": entries}, media_type=FHIR_JSON
        )

    @app.post("/fhir/R4/{rtype}")
    async def create(rtype: str, request: Request) -> JSONResponse:
        rid = f"p{next(ids)}"
        body = put(rtype, rid, json.loads(await request.body()))
        headers = {"Location": f"/fhir/R4/{rtype}/{rid}/_history/1", "ETag": 'W/"1"'}
        headers["X-Ledger-Index"] = "0"
        return JSONResponse(body, status_code=201, media_type=FHIR_JSON, headers=headers)

    @app.put("/fhir/R4/{rtype}/{rid}")
    async def update(rtype: str, rid: str, request: Request) -> JSONResponse:
        body = put(rtype, rid, json.loads(await request.body()))
        return JSONResponse(body, media_type=FHIR_JSON, headers={"ETag": 'W/"2"'})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_peer(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_keep_alive=75,  # as `medledger serve`
    )


if __name__ == "__main__":
    main()
