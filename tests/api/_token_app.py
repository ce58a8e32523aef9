"""A small app with only the auth and admin routers, and a real uvicorn server for it.

The test-only ``set_caller`` dependency stands in for the security layer: it turns a bearer
token into ``request.state.caller`` with ``TokenService.authenticate_bearer``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import Depends, FastAPI, Request

from medledger.access.token_service import TokenService
from medledger.api import admin, auth, errors
from medledger.ledger.node import LedgerNode

MAX_BODY = 16 * 1024


def build_app(service: TokenService, node: LedgerNode) -> FastAPI:
    """The OAuth routes (public) and the admin routes (behind a bearer token)."""

    async def set_caller(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer":
            host = request.client.host if request.client else None
            request.state.caller = service.authenticate_bearer(
                token.strip(), address=host, purpose=None, break_glass=None
            )

    app = FastAPI()
    errors.install(app)
    app.include_router(auth.router(service, max_body=MAX_BODY))
    app.include_router(
        admin.router(service.admin(), node, max_body=MAX_BODY), dependencies=[Depends(set_caller)]
    )
    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port; yield its base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
