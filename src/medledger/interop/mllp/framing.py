"""MLLP framing without I/O: wrap one message in a block, and cut a byte stream into blocks.

An MLLP block is ``<VT> message <FS><CR>`` (VT = 0x0b, FS = 0x1c, CR = 0x0d; HL7 v2.5 Appendix C,
Minimal Lower Layer Protocol). :class:`FrameDecoder` is a push parser: feed it whatever a socket
returned, in chunks of any size, and it answers with events in stream order:

- :class:`Frame`: one complete message, without the framing bytes;
- :class:`Oversize`: a block longer than the cap, read to its end but never buffered beyond the
  cap; only its first :data:`PREFIX_BYTES` bytes are kept, so the answer can quote its MSH;
- :class:`Discarded`: bytes that belong to no block (noise before a VT, or a block abandoned by a
  new VT or by the end of the stream). Only the count is kept, never the bytes.

A VT inside a block starts a new block: the unfinished one is discarded. This is safe for every
encoding HL7 senders use here (ASCII, UTF-8, GBK, GB18030): none of them has 0x0b or 0x1c inside a
multi-byte character. An FS that is not followed by CR is ordinary content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medledger.errors import InputError

__all__ = [
    "CR",
    "END",
    "FS",
    "PREFIX_BYTES",
    "VT",
    "Discarded",
    "Event",
    "Frame",
    "FrameDecoder",
    "Oversize",
    "encode_frame",
]

VT = b"\x0b"
FS = b"\x1c"
CR = b"\x0d"
END = FS + CR
PREFIX_BYTES = 4096  # enough for any MSH segment: the answer to an oversize block needs MSH-10


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete message, without its VT and FS CR."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Oversize:
    """A block longer than the cap: its first bytes and its full length (without framing)."""

    prefix: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Discarded:
    """Bytes outside any complete block: ``outside`` (before a VT) or ``truncated`` (a block cut
    short by a new VT or by the end of the stream)."""

    size: int
    reason: Literal["outside", "truncated"]


Event = Frame | Oversize | Discarded


def encode_frame(message: bytes, *, field: str = "message") -> bytes:
    """Return ``message`` wrapped in an MLLP block.

    Requires that ``message`` holds neither VT nor FS CR: either would end the block early at
    the receiver. ``field`` names the argument in the error.
    """
    for marker, name in ((VT, "VT (0x0b)"), (END, "FS CR (0x1c 0x0d)")):
        at = message.find(marker)
        if at >= 0:
            raise InputError(
                f"{field} holds the MLLP control sequence {name} at byte {at}",
                field=field,
                value=f"{name} at byte {at} of {len(message)}",
                expected="message bytes without VT (0x0b) and without FS CR (0x1c 0x0d)",
            )
    return VT + message + END


class FrameDecoder:
    """Cut a byte stream into MLLP blocks (module doc).

    Holds at most ``max(max_message_bytes, PREFIX_BYTES)`` bytes between calls, however long
    the block. Requires ``max_message_bytes`` ≥ 1.
    """

    def __init__(self, max_message_bytes: int = 1_048_576) -> None:
        if max_message_bytes < 1:
            raise InputError(
                "max_message_bytes must be positive",
                field="max_message_bytes",
                value=max_message_bytes,
                expected="an integer ≥ 1",
            )
        self.max_message_bytes = max_message_bytes
        self._in_block = False
        self._buf = bytearray()  # the block so far, or only its prefix once it is oversize
        self._size = 0  # bytes of content seen in the current block
        self._fs_pending = False  # the last chunk ended in FS: CR may follow in the next one
        self._outside = 0  # length of the current run of bytes outside any block

    @property
    def buffered(self) -> int:
        """Bytes currently held for the unfinished block."""
        return len(self._buf)

    @property
    def in_block(self) -> bool:
        """True while a block has started and not yet ended."""
        return self._in_block

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data`` and return the events it completes, in stream order."""
        events: list[Event] = []
        i, n = 0, len(data)
        while i < n:
            if not self._in_block:
                start = data.find(VT, i)
                if start < 0:
                    self._outside += n - i
                    break
                self._outside += start - i
                self._flush_outside(events)
                self._open()
                i = start + 1
                continue
            if self._fs_pending:
                self._fs_pending = False
                if data[i] == CR[0]:
                    events.append(self._close())
                    i += 1
                    continue
                self._take(FS)  # a lone FS is content
            end = data.find(END, i)
            restart = data.find(VT, i, end if end >= 0 else n)
            if restart >= 0:
                self._take(data[i:restart])
                events.append(Discarded(self._size + 1, "truncated"))  # +1: its VT
                self._open()
                i = restart + 1
            elif end >= 0:
                self._take(data[i:end])
                events.append(self._close())
                i = end + 2
            else:
                stop = n - 1 if data[n - 1] == FS[0] else n
                self._fs_pending = stop < n
                self._take(data[i:stop])
                i = n
        return events

    def eof(self) -> list[Event]:
        """Close the stream: an unfinished block or trailing noise becomes a ``Discarded``."""
        events: list[Event] = []
        if self._in_block:
            size = self._size + (1 if self._fs_pending else 0)
            events.append(Discarded(size + 1, "truncated"))  # +1: its VT
            self._in_block = False
            self._fs_pending = False
            self._buf = bytearray()
        self._flush_outside(events)
        return events

    def _open(self) -> None:
        self._in_block = True
        self._buf = bytearray()
        self._size = 0
        self._fs_pending = False

    def _take(self, piece: bytes) -> None:
        if not piece:
            return
        over = self._size > self.max_message_bytes
        self._size += len(piece)
        if over:
            return
        if self._size > self.max_message_bytes:  # just crossed the cap: keep the prefix only
            room = PREFIX_BYTES - len(self._buf)
            if room > 0:
                self._buf += piece[:room]
            del self._buf[PREFIX_BYTES:]
            return
        self._buf += piece

    def _close(self) -> Frame | Oversize:
        self._in_block = False
        body = bytes(self._buf)
        self._buf = bytearray()
        if self._size > self.max_message_bytes:
            return Oversize(body, self._size)
        return Frame(body)

    def _flush_outside(self, events: list[Event]) -> None:
        if self._outside:
            events.append(Discarded(self._outside, "outside"))
            self._outside = 0
