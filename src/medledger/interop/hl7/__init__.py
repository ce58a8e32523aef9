"""HL7 v2.5 for the integration gateway: decode, map to the neutral model, ACK, FHIR, write.

Pure code, no sockets and no database (the MLLP transport and the records layer sit on
either side):

- :func:`decode` reads message bytes (MLLP framing, MSH-18 charsets incl. GBK/GB18030,
  delimiters, escapes) into a :class:`Decoded` with a checked :class:`Header`;
  :func:`peek_header` reads what it can of a message that was refused;
- :func:`read_order` (ORM^O01, OML^O21 → Requisition), :func:`read_results` (ORU^R01 →
  Results), :func:`read_message` / :func:`to_model` dispatch on MSH-9; facilities are
  resolved through a :class:`SenderMap`;
- :func:`build_ack` and :func:`parse_ack` write and read acknowledgements (MSA, ERR);
- :func:`requisition_bundle` and :func:`result_bundle` map the model to FHIR R4 transaction
  Bundles;
- :func:`result_message` and :func:`order_message` write ORU^R01 and ORM^O01.

Every refusal is a :class:`medledger.errors.MessageRejected` naming the segment, its
occurrence, the field and the HL7 table 0357 code; nothing else escapes for bad input.
"""

from __future__ import annotations

from medledger.interop.hl7.ack import ERROR_TEXT, Ack, build_ack, parse_ack, read_ack
from medledger.interop.hl7.codec import MESSAGE_TYPES, Decoded, Header, decode, peek_header
from medledger.interop.hl7.escape import Separators
from medledger.interop.hl7.fhir_orders import requisition_bundle
from medledger.interop.hl7.fhir_results import result_bundle, result_children
from medledger.interop.hl7.inbound import read_message, to_model
from medledger.interop.hl7.orders import read_order
from medledger.interop.hl7.outbound import order_message, result_message
from medledger.interop.hl7.results import read_results
from medledger.interop.hl7.senders import SenderMap

__all__ = [
    "ERROR_TEXT",
    "MESSAGE_TYPES",
    "Ack",
    "Decoded",
    "Header",
    "SenderMap",
    "Separators",
    "build_ack",
    "decode",
    "order_message",
    "parse_ack",
    "peek_header",
    "read_ack",
    "read_message",
    "read_order",
    "read_results",
    "requisition_bundle",
    "result_bundle",
    "result_children",
    "result_message",
    "to_model",
]
