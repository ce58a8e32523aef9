"""``medledger serve``: run the node's HTTP API (FHIR R4 at /fhir/R4)."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
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
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL for a new data directory (default: SQLite file in DIR), e.g. "
            "postgresql+psycopg://user@127.0.0.1:5432/medledger. An existing directory keeps "
            "the database it was created with."
        ),
    ] = None,
    suite: Annotated[
        str, typer.Option(help="Crypto suite for a new data directory: intl-v1 or sm-v1.")
    ] = "intl-v1",
    node: Annotated[
        str | None, typer.Option(help="Node name for a new data directory (default: host name).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM) for HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM) for HTTPS.")] = None,
    max_body: Annotated[
        int, typer.Option(min=1024, help="Largest accepted request body, bytes.")
    ] = 1024 * 1024,
    keep_alive: Annotated[
        int,
        typer.Option(
            min=1,
            help="Seconds an idle connection stays open (longer than any proxy or client "
            "in front keeps it, so it never sends on a connection we just closed).",
        ),
    ] = 75,
    audit_interval: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Seconds between audit batches: each request's audit event is durable before "
            "the answer, and anchored on the ledger (an audit.batch entry) within this time.",
        ),
    ] = 1.0,
    interop_config: Annotated[
        Path | None,
        typer.Option(help="Gateway configuration (default: DIR/interop.yaml if it exists)."),
    ] = None,
    mllp_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Run the HL7 v2 MLLP listener on this port (overrides mllp.listen).",
        ),
    ] = None,
    mllp_host: Annotated[str, typer.Option(help="Address the MLLP listener binds.")] = "127.0.0.1",
) -> None:
    """Serve FHIR R4 over HTTP(S): records encrypted at rest, every version on the ledger.

    Every endpoint but /fhir/R4/metadata, /healthz, /readyz, POST /api/v1/verify and the
    OAuth endpoints (/auth/token, /auth/revoke, /.well-known/*) needs a bearer token from
    POST /auth/token; every request is audited (docs/security.md).

    On first start in an empty DIR, creates the ledger (as `medledger init` would) and the
    records' master key and group secret (mode 0600). Stop with Ctrl-C: acknowledged writes are
    durable, and a write interrupted mid-way is completed or rolled back at the next start.
    """
    import uvicorn

    from medledger.api.app import create_app, open_security
    from medledger.interop.config import CONFIG_FILE as INTEROP_FILE
    from medledger.interop.config import load_gateway_config
    from medledger.interop.runtime import Interop
    from medledger.ledger.config import CONFIG_FILE, db_url, read_config
    from medledger.ledger.node import LedgerNode
    from medledger.records.service import RecordService

    if (tls_cert is None) != (tls_key is None):
        raise InputError(
            "--tls-cert and --tls-key go together", field="tls", expected="both or neither"
        )
    # uvicorn drains open requests on SIGTERM/SIGINT, then re-raises the signal under the
    # handler it found: make that handler end the process through the ``with`` block below, so
    # the node is closed (orderer stopped, writer lock released) and the exit code is 0. Set
    # before opening the node, so a signal during startup recovery also closes it cleanly.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    if (data / CONFIG_FILE).exists():
        if db is not None and db != db_url(data, read_config(data)):
            raise InputError(
                f"{data} was created with another database; --db applies only to a new one",
                field="db",
                value=db,
                expected="the database in the data directory's config, or no --db",
            )
        node_ = LedgerNode.open(data)
    else:
        node_ = LedgerNode.init(data, suite=suite, db=db, node=node)
    with node_:
        node_.acquire_writer()
        service = RecordService.open(node_)
        loaded = node_.warm_cache()
        scheme = "https" if tls_cert else "http"
        err_console.print(
            f"MedLedger on {scheme}://{host}:{port}  (FHIR: /fhir/R4, API docs: /docs; "
            f"{loaded:,} tree nodes in memory)",
            markup=False,
        )
        security = open_security(service, audit_interval=audit_interval)
        gateway_config = load_gateway_config(interop_config or data / INTEROP_FILE)
        listen = (mllp_host, mllp_port) if mllp_port is not None else None
        interop = Interop.open(
            service,
            gateway_config,
            trail=security.trail,
            listen=listen,
            policy=security.policy,
            consents=security.consents,
        )
        where = listen or gateway_config.listen
        if where is not None:
            err_console.print(f"HL7 v2 over MLLP on {where[0]}:{where[1]}", markup=False)
        try:
            uvicorn.run(
                create_app(service, max_body=max_body, security=security, interop=interop),
                host=host,
                port=port,
                log_level="warning",
                loop="auto",
                http="auto",
                timeout_keep_alive=keep_alive,
                ssl_certfile=str(tls_cert) if tls_cert else None,
                ssl_keyfile=str(tls_key) if tls_key else None,
            )
        finally:
            security.close()  # anchors the last audit events before the node closes


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)
