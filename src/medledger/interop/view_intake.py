"""SQL views into the gateway, and the gateway's outcomes into the bridge tables.

``ViewIntake`` is a connector's sink (``interop.views.poller``): each model of a batch is
journalled under interface ``view:<connector>`` (its control id is ``<row key>@<watermark>``,
so a re-read row is a duplicate and an updated row a new message) and processed like any
message; a row that could not be mapped is journalled and quarantined with its reason. The
poller saves its watermark only after the sink returned, so nothing is lost across a restart.

``Exposer`` writes what the gateway stored into the bridge tables (``ExposedTables``) for
systems that read tables: requisitions with the performer's codes, results, recalls.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence

from medledger.errors import MedLedgerError
from medledger.interop.gateway import Gateway
from medledger.interop.ingest import Stored
from medledger.interop.model import Coded, Requisition, Result
from medledger.interop.model_json import model_to_json
from medledger.interop.views.config import ConnectorConfig
from medledger.interop.views.exposed import ExposedTables
from medledger.interop.views.poller import Checkpoint, ViewPoller
from medledger.records.blind import pseudonym

__all__ = ["Exposer", "ViewIntake", "run_pollers"]

log = logging.getLogger(__name__)


class ViewIntake:
    """The sink of one connector: journal, process, quarantine."""

    def __init__(self, gateway: Gateway, connector: ConnectorConfig) -> None:
        self.gateway = gateway
        self.connector = connector
        self.interface = f"view:{connector.name}"[:128]

    def __call__(self, models: Sequence[Requisition | Result], checkpoint: Checkpoint) -> None:
        for model in models:
            raw = model_to_json(model)
            kind = "row:requisition" if isinstance(model, Requisition) else "row:result"
            control = model.control_id or "sha256:" + hashlib.sha256(raw).hexdigest()[:32]
            begun = self.gateway.journal.begin(
                interface=self.interface,
                institution=self.connector.institution,
                source=self.interface,
                control_id=control[:199],
                message_type=kind,
                raw=raw,
            )
            if begun.finished:
                continue  # already processed (a re-read after a restart): a duplicate
            self.gateway.process(
                begun.message, model if isinstance(model, Requisition) else [model]
            )
        for bad in checkpoint.quarantined:
            raw = json.dumps(bad.to_dict(), ensure_ascii=False, sort_keys=True).encode()
            begun = self.gateway.journal.begin(
                interface=self.interface,
                institution=self.connector.institution,
                source=self.interface,
                control_id=f"{bad.row_key}@quarantined"[:199],
                message_type="row:unmappable",
                raw=raw,
            )
            if not begun.finished:
                # The reason names the column and the rule, never the value (it may be PHI).
                self.gateway.quarantine(begun.message, f"{bad.column}: {bad.reason}")


class Exposer:
    """Writes stored requisitions and results into the bridge tables."""

    def __init__(self, gateway: Gateway, tables: ExposedTables) -> None:
        self.gateway = gateway
        self.tables = tables

    def _pseudonym(self, institution: str, patient_id: str) -> str:
        service = self.gateway.service
        return pseudonym(service.group, institution, patient_id, service.suite)

    def __call__(self, model: object, stored: Stored) -> None:
        if isinstance(model, Requisition):
            found, _ = self.gateway.ingest.translations(model)  # as the gateway translated

            def translate(code: Coded) -> Coded | None:
                codes = found.get((code.system, code.code))
                return codes[0] if codes else None

            self.tables.upsert_requisition(
                model,
                pseudonym=self._pseudonym(model.sender, model.patient.id),
                translate=translate,
            )
        elif isinstance(model, list):
            for res in model:
                if isinstance(res, Result):
                    self.tables.upsert_result(res)


def run_pollers(
    gateway: Gateway, connectors: Sequence[ConnectorConfig], stop: threading.Event
) -> list[threading.Thread]:
    """Start one polling thread per connector; they stop when ``stop`` is set."""
    threads = []
    for connector in connectors:
        poller = ViewPoller(
            connector, gateway.service.ledger.store.engine, ViewIntake(gateway, connector)
        )

        def loop(p: ViewPoller = poller, name: str = connector.name) -> None:
            try:
                p.run(stop, on_error=lambda exc: log.error("view %s: %s", name, _code(exc)))
            finally:
                p.close()

        thread = threading.Thread(target=loop, name=f"medledger-view-{connector.name}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def _code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, MedLedgerError) else type(exc).__name__
