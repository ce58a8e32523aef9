"""Outbound deliveries: results pushed to member hospitals, never lost.

A delivery (one resource version to one recipient endpoint) is queued durably
(:mod:`.queue`), sent by a worker through a channel sender — a signed FHIR rest-hook POST
(:class:`.worker.RestHookSender`, signatures in :mod:`.signing`) or an HL7 ORU^R01 over MLLP
(a sender callable supplied by the MLLP client) — and retried with exponential backoff
(:mod:`.backoff`) until it succeeds or its deadline passes; then it waits in the dead-letter
list until an operator redelivers it.
"""

from __future__ import annotations

from medledger.interop.delivery.backoff import next_delay
from medledger.interop.delivery.queue import Delivery, DeliveryCounts, DeliveryQueue
from medledger.interop.delivery.signing import sign, verify
from medledger.interop.delivery.worker import DeliveryWorker, RestHookSender, Sender

__all__ = [
    "Delivery",
    "DeliveryCounts",
    "DeliveryQueue",
    "DeliveryWorker",
    "RestHookSender",
    "Sender",
    "next_delay",
    "sign",
    "verify",
]
