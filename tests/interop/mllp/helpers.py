"""Shared test helpers: HL7-shaped messages, echo ACKs, and a raw socket peer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from medledger.interop.mllp import Frame, FrameDecoder, Oversize

T = TypeVar("T")


def message(n: int, *, encoding: str = "utf-8") -> bytes:
    """An ORM^O01 from 示例区中医院 to 示例市第一人民医院 with control id ``C<n>``."""
    charset = "GB 18030-2000" if encoding == "gb18030" else "UNICODE UTF-8"
    return (
        "MSH|^~\\&|HIS|hosp-member-east|MEDLEDGER|hosp-central|20261120101500||ORM^O01|"
        f"C{n}|P|2.5|||AL|NE||{charset}\r"
        f"PID|1||ZY{n:06d}^^^hosp-member-east^MR||示例^病人{n}||19750312|M\r"
        f"ORC|NW|SQ{n:06d}\r"
        f"OBR|1|SQ{n:06d}||CT001^胸部CT平扫^L|||20261120101000||||||临床诊断：咳嗽待查\r"
    ).encode(encoding)


def control_id(msg: bytes) -> bytes:
    """MSH-10 of a message (field separator ``|``)."""
    return msg.split(b"\r", 1)[0].split(b"|")[9]


def ack_for(msg: bytes, code: bytes = b"AA") -> bytes:
    """An ACK echoing MSH-10 in MSA-2."""
    cid = control_id(msg)
    return (
        b"MSH|^~\\&|MEDLEDGER|hosp-central|HIS|hosp-member-east|20261120101501||ACK^O01^ACK|A"
        + cid
        + b"|P|2.5\rMSA|"
        + code
        + b"|"
        + cid
        + b"\r"
    )


def acks_match(msg: bytes, ack: bytes) -> bool:
    """True when ``ack`` is a positive ACK of ``msg``."""
    return b"\rMSA|AA|" + control_id(msg) + b"\r" in ack


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run ``coro`` on a fresh event loop, failing instead of hanging past ``timeout``."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


class RawPeer:
    """A bare TCP sender that writes arbitrary bytes and reads back MLLP blocks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(10_000_000)
        self.blocks: list[bytes] = []

    @classmethod
    async def open(cls, port: int) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def write(self, data: bytes, *, chunk: int | None = None) -> None:
        """Write ``data``, in separate writes of ``chunk`` bytes when given."""
        step = chunk or len(data) or 1
        for i in range(0, len(data), step):
            self.writer.write(data[i : i + step])
            await self.writer.drain()
            if chunk:
                await asyncio.sleep(0)

    async def read_blocks(self, n: int, timeout: float = 5.0) -> list[bytes]:
        """Return the next ``n`` blocks the server sent."""
        async with asyncio.timeout(timeout):
            while len(self.blocks) < n:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                for event in self.decoder.feed(data):
                    if isinstance(event, Frame | Oversize):
                        assert isinstance(event, Frame)
                        self.blocks.append(event.payload)
        out, self.blocks = self.blocks[:n], self.blocks[n:]
        return out

    async def at_eof(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection within ``timeout`` (and sends nothing)."""
        try:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(65536)
        except ConnectionResetError:
            return True  # an abort is a close too
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
