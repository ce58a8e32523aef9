"""``medledger serve``: run the node's HTTP API (FHIR R4 at /fhir/R4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medledger.cli.output import err_console, handle_errors
from medledger.errors import InputError

DEFAULT_DATA = Path("medledger-data")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


@handle_errors
def serve(
    data: Annotated[
        Path, typer.Option("--data", "-d", help="Ledger data directory.")
    ] = DEFAULT_DATA,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM) for HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM) for HTTPS.")] = None,
) -> None:
    """Serve FHIR R4 over HTTP(S): records encrypted at rest, every version on the ledger.

    Creates the records' master key and group secret in DIR on first start (mode 0600).
    """
    import uvicorn

    from medledger.api.app import create_app
    from medledger.ledger.node import LedgerNode
    from medledger.records.service import RecordService

    if (tls_cert is None) != (tls_key is None):
        raise InputError(
            "--tls-cert and --tls-key go together", field="tls", expected="both or neither"
        )
    with LedgerNode.open(data) as node:
        node.acquire_writer()
        service = RecordService.open(node)
        loaded = node.warm_cache()
        scheme = "https" if tls_cert else "http"
        err_console.print(
            f"MedLedger on {scheme}://{host}:{port}  (FHIR: /fhir/R4, API docs: /docs; "
            f"{loaded:,} tree nodes in memory)",
            markup=False,
        )
        uvicorn.run(
            create_app(service),
            host=host,
            port=port,
            log_level="warning",
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
