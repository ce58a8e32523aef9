"""HL7 Minimal Lower Layer Protocol (MLLP): framing, an asyncio server and a client.

The transport moves bytes and never parses HL7: the gateway's handler does. Blocks are
``<VT> message <FS><CR>``; the framing is our own (:mod:`.framing`) rather than python-hl7's
``hl7.mllp`` because the gateway needs what that reader cannot give: a size cap that reads an
oversize block to its end without buffering it and keeps its prefix for the answer, recovery of
the block that follows noise, and raw bytes (the encoding is GBK, GB18030 or UTF-8, decided by the
HL7 layer, not the transport).
"""

from medledger.interop.mllp.client import MllpClient
from medledger.interop.mllp.framing import (
    Discarded,
    Frame,
    FrameDecoder,
    Oversize,
    encode_frame,
)
from medledger.interop.mllp.runtime import raise_open_files_limit, run
from medledger.interop.mllp.server import Counters, Handler, MllpServer, Peer, Reject

__all__ = [
    "Counters",
    "Discarded",
    "Frame",
    "FrameDecoder",
    "Handler",
    "MllpClient",
    "MllpServer",
    "Oversize",
    "Peer",
    "Reject",
    "encode_frame",
    "raise_open_files_limit",
    "run",
]
