"""The MLLP framing: encode_frame and the push decoder, on golden blocks and random streams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.errors import InputError
from medledger.interop.mllp.framing import (
    PREFIX_BYTES,
    Discarded,
    Event,
    Frame,
    FrameDecoder,
    Oversize,
    encode_frame,
)

from .helpers import message

# HL7 v2.5 Appendix C (MLLP) block: <SB=0x0b> data <EB=0x1c><CR=0x0d>.
GOLDEN = b"\x0bMSH|^~\\&|LIS|hosp-member-east\rMSA|AA|1\r\x1c\x0d"

payloads = st.binary(max_size=300).filter(lambda b: b"\x0b" not in b and b"\x1c\x0d" not in b)


def feed_chunks(decoder: FrameDecoder, data: bytes, sizes: list[int]) -> list[Event]:
    """Feed ``data`` cut into the given chunk sizes (cycled), then the rest."""
    events: list[Event] = []
    i, k = 0, 0
    while i < len(data):
        size = sizes[k % len(sizes)] if sizes else len(data)
        events += decoder.feed(data[i : i + size])
        i += size
        k += 1
    return events


def test_golden_block_decodes_to_its_payload() -> None:
    """The standard's block yields exactly the bytes between VT and FS CR."""
    assert FrameDecoder().feed(GOLDEN) == [Frame(GOLDEN[1:-2])]


def test_encode_frame_wraps_in_vt_and_fs_cr() -> None:
    """encode_frame adds VT before and FS CR after, nothing else."""
    assert encode_frame(GOLDEN[1:-2]) == GOLDEN


@pytest.mark.parametrize(("bad", "where"), [(b"MSH\x0b|", 3), (b"MSH|x\x1c\rPID", 5)])
def test_encode_frame_refuses_control_sequences(bad: bytes, where: int) -> None:
    """A message holding VT or FS CR is refused, naming the field, the offset and the rule."""
    with pytest.raises(InputError) as caught:
        encode_frame(bad)
    assert caught.value.field == "message"
    assert f"byte {where}" in str(caught.value.value)
    assert "without VT" in (caught.value.expected or "")


def test_one_byte_at_a_time() -> None:
    """A block fed one byte per call still comes out whole, once."""
    decoder = FrameDecoder()
    events = [e for b in GOLDEN for e in decoder.feed(bytes([b]))]
    assert events == [Frame(GOLDEN[1:-2])]


def test_several_blocks_in_one_chunk() -> None:
    """Three blocks in one chunk give three frames, in order."""
    msgs = [message(i) for i in range(3)]
    events = FrameDecoder().feed(b"".join(encode_frame(m) for m in msgs))
    assert events == [Frame(m) for m in msgs]


def test_noise_before_a_block_is_counted_not_kept() -> None:
    """Bytes before VT become one Discarded(outside) with their count, then the frame."""
    events = FrameDecoder().feed(b"\r\nnoise" + GOLDEN)
    assert events == [Discarded(7, "outside"), Frame(GOLDEN[1:-2])]


def test_lone_fs_is_content_even_across_chunks() -> None:
    """An FS not followed by CR is data, also when the chunk boundary falls right after it."""
    decoder = FrameDecoder()
    assert decoder.feed(b"\x0bA\x1c") == []
    assert decoder.feed(b"B\x1c") == []
    assert decoder.feed(b"\x0d") == [Frame(b"A\x1cB")]


def test_vt_inside_a_block_restarts_it() -> None:
    """A VT before FS CR abandons the unfinished block (counted with its VT) and starts anew."""
    events = FrameDecoder().feed(b"\x0bMSH|half" + GOLDEN)
    assert events == [Discarded(9, "truncated"), Frame(GOLDEN[1:-2])]


def test_eof_inside_a_block_is_a_truncated_discard() -> None:
    """At end of stream an unfinished block is reported as truncated, trailing noise as outside."""
    decoder = FrameDecoder()
    decoder.feed(b"\x0bMSH|")
    assert decoder.eof() == [Discarded(5, "truncated")]
    decoder.feed(b"junk")
    assert decoder.eof() == [Discarded(4, "outside")]


def test_oversize_block_is_read_to_its_end_without_buffering_it() -> None:
    """A 3 MB block over a 64 KiB cap: memory stays bounded, the prefix and size are reported,
    and the next block decodes normally."""
    cap = 65536
    body = message(1) + b"OBX|" + b"x" * 3_000_000
    stream = encode_frame(body) + GOLDEN
    decoder = FrameDecoder(cap)
    events: list[Event] = []
    for i in range(0, len(stream), 50_000):
        events += decoder.feed(stream[i : i + 50_000])
        assert decoder.buffered <= cap
    assert events == [Oversize(body[:PREFIX_BYTES], len(body)), Frame(GOLDEN[1:-2])]


def test_block_exactly_at_the_cap_is_accepted() -> None:
    """max_message_bytes is inclusive: a block of exactly that size is a Frame; one more byte
    is Oversize."""
    assert FrameDecoder(10).feed(encode_frame(b"0123456789")) == [Frame(b"0123456789")]
    assert FrameDecoder(10).feed(encode_frame(b"0123456789A")) == [Oversize(b"0123456789A", 11)]


def test_cap_must_be_positive() -> None:
    """A zero cap is refused with the field name."""
    with pytest.raises(InputError) as caught:
        FrameDecoder(0)
    assert caught.value.field == "max_message_bytes"


def test_gb18030_bytes_pass_through_untouched() -> None:
    """Multi-byte GB18030 text never contains VT or FS: the frame holds the exact bytes."""
    msg = message(7, encoding="gb18030")
    assert FrameDecoder().feed(encode_frame(msg)) == [Frame(msg)]


@settings(max_examples=200)
@given(
    st.lists(payloads, max_size=8),
    st.lists(st.integers(1, 64), max_size=10),
    st.lists(st.binary(max_size=20).filter(lambda b: b"\x0b" not in b), max_size=9),
)
def test_any_chunking_reassembles_exactly_the_sent_frames(
    frames: list[bytes], sizes: list[int], noise: list[bytes]
) -> None:
    """Frames with noise between them, cut at arbitrary points: the frames come out exactly and
    in order, and the discarded counts add up to the noise."""
    parts: list[bytes] = []
    for i, frame in enumerate(frames):
        parts.append(noise[i] if i < len(noise) else b"")
        parts.append(encode_frame(frame))
    stream = b"".join(parts)
    decoder = FrameDecoder()
    events = feed_chunks(decoder, stream, sizes) + decoder.eof()
    assert [e.payload for e in events if isinstance(e, Frame)] == frames
    discarded = [e for e in events if isinstance(e, Discarded)]
    assert all(e.reason == "outside" for e in discarded)
    assert sum(e.size for e in discarded) == sum(len(n) for n in noise[: len(frames)])
