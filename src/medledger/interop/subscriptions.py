"""The subscription hub: turns anchored record versions into signed rest-hook deliveries.

How a write becomes a notification:

1. ``RecordService`` calls :meth:`SubscriptionHub.on_written` once a write is anchored; it
   only wakes the hub's thread (``Event.set``: it cannot block or raise).
2. The thread reads the ledger entries after its watermark, in order, by primary key. For
   each ``record.put`` it asks every active Subscription of that type whether the resource
   matches as the Subscription's owner sees it (``subscription_match.matches``: one search
   each) and queues a delivery per match (``enqueue``, idempotent on ``notification_key``).
   A Subscription entry (put or delete) reloads the cache of Subscriptions first.
3. After each batch it stores the next index in ``interop_watermarks`` (row
   ``@fhir-subscriptions``: the ``@`` keeps it apart from SQL-view connector names).

At least once: the watermark moves only after a batch's deliveries are queued. If the process
dies between a write and its enqueue, the next :meth:`start` (or :meth:`catch_up`) rereads
the entries after the stored watermark and queues what is missing; what was queued already
is not queued twice (same key). The scan also covers versions no listener heard of: those the
anchoring retry thread or crash recovery appended. Blocks commit in index order, with their
versions marked anchored in the same transaction, so no entry can appear behind the scan.
A hub made with no stored watermark begins at the ledger's end: no older write is notified.

Status changes the hub writes (R4: only the server moves a Subscription to active or error):
``requested`` → ``active`` when it loads a requested Subscription that passes
``check_subscription``; ``requested``/``active`` → ``error`` (with ``error`` saying why) when
a stored one fails that check (say a transaction Bundle bypassed the API's check), and
``active`` → ``error`` when a delivery to it died after its current version was written
(:meth:`flag_dead`, on the thread every ``flag_interval`` seconds). To resume, the subscriber
sets it ``active`` again; an operator may ``redeliver`` the dead deliveries.

Rendering: with payload ``application/fhir+json`` the body is the version the delivery names,
as stored (read with the node's system guard): R4 sends the resource itself, though as a PUT to
``[endpoint]/[type]/[id]``; this node POSTs it, signed, to the endpoint (``interop.delivery``).
Without payload the body is empty (R4: the subscriber queries). A delivery whose Subscription
is no longer active (off, error, ended, deleted) is not sent: ``render`` raises ``Gone``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from medledger.access.consent import ConsentIndex
from medledger.access.sharing import SharingPolicy, load_policy
from medledger.errors import Gone, InputError, MedLedgerError, ResourceInvalid, StorageError
from medledger.interop.delivery.queue import Delivery, DeliveryQueue
from medledger.interop.delivery.worker import DeliveryWorker, RestHookSender, describe
from medledger.interop.subscription_match import (
    FHIR_JSON,
    SubscriptionRule,
    matches,
    notification_key,
    owner_guard,
    parse_subscription,
)
from medledger.ledger.block import format_ts
from medledger.records.service import RecordService
from medledger.records.versions import Version
from medledger.store.engine import begin_write
from medledger.store.schema_interop import interop_deliveries, interop_watermarks

__all__ = ["CHANNEL", "EMPTY_TYPE", "WATERMARK", "SubscriptionHub"]

CHANNEL = "rest-hook"
WATERMARK = "@fhir-subscriptions"
EMPTY_TYPE = "text/plain"  # the content type of a notification without payload (empty body)
log = logging.getLogger("medledger.interop.subscriptions")
_CHUNK = 500


class SubscriptionHub:
    """Match anchored versions against the active Subscriptions; queue, render and sign them.

    ``policy`` defaults to the node's sharing policy (``sharing.yaml`` or the default),
    ``consents`` to a fresh ``ConsentIndex``. ``deadline_s`` is how long a delivery is retried.
    """

    def __init__(
        self,
        service: RecordService,
        queue: DeliveryQueue,
        *,
        deadline_s: float = 72 * 3600,
        policy: SharingPolicy | None = None,
        consents: ConsentIndex | None = None,
        poll: float = 2.0,
        flag_interval: float = 30.0,
        batch: int = 200,
    ) -> None:
        for name, value in (("deadline_s", deadline_s), ("poll", poll),
                            ("flag_interval", flag_interval), ("batch", batch)):  # fmt: skip
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be positive", field=name, value=value,
                                 expected="a number > 0")  # fmt: skip
        self._service, self._queue, self._deadline = service, queue, float(deadline_s)
        self._policy = policy or load_policy(service.ledger.data_dir)
        self._consents = consents or ConsentIndex(service)
        self._poll, self._flag_interval, self._batch = poll, flag_interval, int(batch)
        self._clock = queue.clock
        self._engine = service.ledger.store.engine
        self._lock = threading.RLock()  # one scan (or flag) at a time
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._rules: dict[str, SubscriptionRule] = {}  # by id: the active ones
        self._stale = True  # the cache must be reloaded before it is used
        self._next = self._load_watermark()  # the next ledger index to read

    # -- the write path ----------------------------------------------------------------------

    def on_written(self, versions: Sequence[Version]) -> None:
        """Wake the hub: new versions are anchored. Never blocks, never raises."""
        self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Listen to the service's writes and run the matching thread (it catches up first)."""
        if self.on_written not in self._service.listeners:
            self._service.listeners.append(self.on_written)
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="medledger-subscriptions", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop listening and stop the thread (the watermark keeps what was done)."""
        if self.on_written in self._service.listeners:
            self._service.listeners.remove(self.on_written)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        last_flag = self._clock()
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.catch_up()
                if self._clock() - last_flag >= self._flag_interval:
                    last_flag = self._clock()
                    self.flag_dead()
            except MedLedgerError as exc:  # the store is down: the watermark did not move
                log.error("subscription scan failed (%s); retrying", describe(exc))
            except Exception as exc:  # a bug must not kill the thread; the scan retries
                log.error("subscription scan failed: %s", type(exc).__name__)
            self._wake.wait(self._poll)

    # -- matching ----------------------------------------------------------------------------

    def catch_up(self) -> int:
        """Match the anchored entries after the watermark now (any thread); return how many
        deliveries were queued."""
        with self._lock:
            queued = 0
            while True:
                with self._service.ledger.reader() as reader:
                    rows = reader.entry_range(self._next, self._next + self._batch)
                for _, data in rows:
                    queued += self._entry(bytes(data))
                if not rows:
                    if self._stale:  # renders read the cache too
                        self._reload()
                    return queued
                self._next = int(rows[-1][0]) + 1
                self._save_watermark(self._next)

    def active(self) -> list[SubscriptionRule]:
        """The active Subscriptions as the hub last loaded them."""
        return sorted(self._rules.values(), key=lambda r: r.id)

    def _entry(self, data: bytes) -> int:
        if b'"record.' not in data:
            return 0
        try:
            entry = json.loads(data)
        except ValueError:
            return 0
        ref = str(entry.get("ref")) if isinstance(entry, dict) else ""
        parts = ref.split("/")
        if len(parts) != 4 or entry.get("type") not in ("record.put", "record.delete"):
            return 0
        rtype, rid = parts[0], parts[1]
        if rtype == "Subscription":
            self._stale = True  # reloaded once, before the next match (not once per entry)
            return 0
        if entry["type"] != "record.put":
            return 0  # R4: no notification for a delete
        if self._stale:
            self._reload()
        now, queued = self._clock(), 0
        for rule in [r for r in self._rules.values() if r.rtype == rtype and r.active_at(now)]:
            guard = owner_guard(rule.owner, self._policy, self._consents)
            try:
                hit = matches(self._service, rule, rid, guard)
            except StorageError:
                raise
            except Exception as exc:  # a bad criteria or a bug: this rule matches nothing
                log.warning("%s not matched (%s)", rule.ref, type(exc).__name__)
                continue
            key = notification_key(rule.id, ref)
            if hit and self._queue.enqueue(
                key, CHANNEL, rule.ref, rule.endpoint, rule.owner, ref, self._deadline
            ):
                queued += 1
        return queued

    def _reload(self) -> None:
        """Load the requested and active Subscriptions; activate, or fail, what needs it."""
        found: list[dict[str, Any]] = []
        params = [("status", "active,requested"), ("_count", "200")]
        page = self._service.search("Subscription", params)
        found.extend(page.resources)
        while page.next_token is not None:
            page = self._service.search("Subscription", [*params, ("_page_token", page.next_token)])
            found.extend(page.resources)
        rules: dict[str, SubscriptionRule] = {}
        for resource in found:
            rule = self._admit(resource)
            if rule is not None:
                rules[rule.id] = rule
        self._rules, self._stale = rules, False

    def _admit(self, resource: dict[str, Any]) -> SubscriptionRule | None:
        rid = str(resource.get("id"))
        facts = self._service.store.facts("Subscription", rid)
        if facts is None:
            return None
        try:
            rule = parse_subscription(resource, owner=facts.owner)
        except ResourceInvalid as exc:
            self._set_status(resource, "error", f"not served: {exc.message}"[:1000])
            return None
        if rule.status == "requested":
            self._set_status(resource, "active")
            rule = replace(rule, status="active", updated=self._clock())
        return rule

    # -- dead deliveries ---------------------------------------------------------------------

    def flag_dead(self) -> int:
        """Set ``error`` on each active Subscription a delivery to which died after its
        current version was written; return how many were set."""
        with self._lock:
            self.catch_up()  # the cache must hold each Subscription's current version
            rules = [r for r in self._rules.values() if r.status == "active"]
            t, flagged = interop_deliveries, 0
            for start in range(0, len(rules), _CHUNK):
                chunk = {r.ref: r for r in rules[start : start + _CHUNK]}
                since = math.floor(min(r.updated for r in chunk.values()) * 1000)
                stmt = (
                    select(t.c.target, func.max(t.c.next_attempt_at))
                    .where(t.c.status == "dead", t.c.channel == CHANNEL,
                           t.c.next_attempt_at >= since, t.c.target.in_(sorted(chunk)))
                    .group_by(t.c.target)
                )  # fmt: skip
                for target, died_ms in self._rows(stmt):
                    rule = chunk[target]
                    if died_ms / 1000 < rule.updated:
                        continue  # it died before the subscriber set the Subscription active
                    note = (
                        "a notification could not be delivered before its deadline "
                        f"(dead-letter list, last at {format_ts(died_ms / 1000)}); "
                        "set status to active to resume"
                    )
                    current = self._service.read("Subscription", rule.id).resource
                    if self._set_status(current, "error", note, rule.version):
                        self._rules = {k: v for k, v in self._rules.items() if k != rule.id}
                        flagged += 1
            return flagged

    def _set_status(
        self,
        resource: dict[str, Any],
        status: str,
        error: str | None = None,
        vid: int | None = None,
    ) -> bool:
        """Write a new version with ``status`` (and ``error``); False if someone else changed
        the Subscription first (the next reload sees their version)."""
        body = {k: v for k, v in resource.items() if k != "error"}
        body["status"] = status
        if error is not None:
            body["error"] = error
        meta = resource.get("meta") or {}
        if vid is None and str(meta.get("versionId", "")).isdigit():
            vid = int(meta["versionId"])
        try:
            self._service.update("Subscription", str(resource["id"]), body, if_match=vid)
        except MedLedgerError as exc:
            log.warning("Subscription status not set to %s (%s)", status, describe(exc))
            return False
        log.info("Subscription/%s set to %s", resource["id"], status)
        return True

    # -- delivery ----------------------------------------------------------------------------

    async def render(self, delivery: Delivery) -> tuple[bytes, str]:
        """The notification body of ``delivery`` and its content type (see module docstring).

        ``Gone`` if its Subscription is no longer active or the version was erased.
        """
        rule = await asyncio.to_thread(self._rule_for, delivery)
        if not rule.payload:
            return b"", EMPTY_TYPE
        parts = delivery.ref.split("/")
        if len(parts) != 4 or parts[2] != "_history" or not parts[3].isdigit():
            raise Gone("the delivery names no resource version", ref=delivery.ref)
        loaded = await asyncio.to_thread(self._service.read, parts[0], parts[1], int(parts[3]))
        body = json.dumps(loaded.resource, ensure_ascii=False, separators=(",", ":"))
        return body.encode("utf-8"), FHIR_JSON

    def secret_for(self, delivery: Delivery) -> bytes:
        """The signing secret of the delivery's Subscription (``Gone`` if it is not active)."""
        return self._cached(delivery).secret

    def headers_for(self, delivery: Delivery) -> Mapping[str, str]:
        """The Subscription's own ``channel.header`` lines, as headers."""
        return dict(self._cached(delivery).headers)

    def sender(self, client: httpx.AsyncClient, *, timeout: float = 10.0) -> RestHookSender:
        """A rest-hook sender that signs with each Subscription's secret and adds its headers."""
        return RestHookSender(
            client, self.secret_for, timeout, clock=self._clock, headers_for=self.headers_for
        )

    def worker(self, client: httpx.AsyncClient, **options: Any) -> DeliveryWorker:
        """A delivery worker for the rest-hook channel of this hub (``options`` go to it)."""
        return DeliveryWorker(self._queue, {CHANNEL: self.sender(client)}, self.render, **options)

    def _cached(self, delivery: Delivery) -> SubscriptionRule:
        rule = self._rules.get(delivery.target.removeprefix("Subscription/"))
        if rule is None or not rule.active_at(self._clock()):
            raise Gone(f"{delivery.target} is no longer active", ref=delivery.target)
        return rule

    def _rule_for(self, delivery: Delivery) -> SubscriptionRule:
        """The delivery's rule, reloading the cache on a miss; ``Gone`` if it is not active."""
        if not delivery.target.startswith("Subscription/"):
            raise InputError("not a subscription delivery", field="target",
                             value=delivery.target, expected="Subscription/<id>")  # fmt: skip
        rule = self._rules.get(delivery.target.removeprefix("Subscription/"))
        if rule is None or not rule.active_at(self._clock()):
            with self._lock:
                self._reload()
        return self._cached(delivery)

    # -- the watermark -----------------------------------------------------------------------

    def _load_watermark(self) -> int:
        t = interop_watermarks
        rows = self._rows(select(t.c.watermark).where(t.c.connector == WATERMARK))
        raw = str(rows[0][0]) if rows else None
        if raw is None:  # the first start: from the ledger's end on
            with self._service.ledger.reader() as reader:
                start = reader.entry_count()
            self._save_watermark(start)
            return start
        value = json.loads(raw) if raw.isascii() and raw.isdigit() else None
        if not isinstance(value, int):
            raise InputError(
                "the subscription watermark is not a ledger index", field=f"watermark {WATERMARK}",
                value=raw, expected="a JSON integer ≥ 0",
            )  # fmt: skip
        return value

    def _save_watermark(self, index: int) -> None:
        t = interop_watermarks
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        values = {"watermark": json.dumps(index), "updated_at": math.floor(self._clock() * 1000)}
        stmt = dialect.insert(t).values(connector=WATERMARK, row_key=None, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[t.c.connector], set_=values)
        try:
            with begin_write(self._engine) as conn:
                conn.execute(stmt)
        except SQLAlchemyError as exc:
            raise StorageError(f"subscription watermark not saved: {type(exc).__name__}") from exc

    def _rows(self, stmt: Any) -> list[Any]:
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(stmt).all())
        except SQLAlchemyError as exc:
            raise StorageError(f"subscription hub read failed: {type(exc).__name__}") from exc
