"""Decoding: framing, delimiters, character sets, escapes, and every header rejection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.errors import InputError, MessageRejected
from medledger.interop.hl7 import Separators, decode, peek_header
from medledger.interop.hl7.charsets import codec_for
from medledger.interop.hl7.escape import STANDARD, escape, unescape
from tests.interop.hl7._util import message, rejected, sample

PID = "PID|1||P001^^^^PI||张三||19800101|M"


def test_header_fields_are_read() -> None:
    """decode exposes the MSH fields: type, trigger, control id, apps, facilities, charset."""
    d = decode(sample("orm_ct_chest"))
    h = d.header
    assert d.message_type == "ORM^O01"
    assert (h.message_code, h.trigger, d.control_id) == ("ORM", "O01", "HIS20240501000123")
    assert (h.processing_id, h.version, h.timestamp) == ("P", "2.5", "20240501083015")
    assert h.sending_application == ("HIS",)
    assert h.sending_facility == ("示例区中医院",)
    assert h.receiving_application == ("RIS",)
    assert h.receiving_facility == ("示例市第一人民医院",)
    assert (h.declared_charset, d.charset) == ("UNICODE UTF-8", "utf-8")
    assert [s.name for s in d.segments] == ["MSH", "PID", "PV1", "ORC", "OBR"]
    assert d.message.segment("PID")[5][0] == "张伟"  # the python-hl7 tree is there too


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("UNICODE UTF-8", "utf-8"),
        ("utf-8", "utf-8"),
        ("UTF8", "utf-8"),
        ("GB18030", "gb18030"),
        ("gbk", "gb18030"),
        ("GB 18030-2000", "gb18030"),
        ("Chinese  GB18030", "gb18030"),
        ("ASCII", "ascii"),
        ("8859/1", "latin-1"),
    ],
)
def test_charset_labels_map_to_codecs(label: str, codec: str) -> None:
    """Every accepted MSH-18 spelling (any case, any spacing) names its Python codec."""
    assert codec_for(label) == codec


@pytest.mark.parametrize(
    ("label", "codec"), [("GB18030", "gb18030"), ("GBK", "gbk"), ("GB 18030-2000", "gb18030")]
)
def test_declared_chinese_charsets_decode(label: str, codec: str) -> None:
    """A message declaring GB18030 or GBK is read with GB18030 and its Chinese text is intact."""
    raw = message(PID, charset=label).decode("utf-8").encode(codec)
    d = decode(raw)
    assert d.charset == "gb18030"
    assert d.segments[1].comp(5) == "张三"


def test_undeclared_gbk_is_detected() -> None:
    """Without MSH-18, bytes that are not UTF-8 are read as GB18030 (undeclared GBK)."""
    text = "MSH|^~\\&|HIS|示例区中医院|||20240501||ORM^O01|C1|P|2.5\rPID|1||P1||李四\r"
    d = decode(text.encode("gbk"))
    assert (d.charset, d.header.declared_charset) == ("gb18030", None)
    assert d.header.sending_facility == ("示例区中医院",)
    assert decode(text.encode("utf-8")).charset == "utf-8"


def test_latin1_and_ascii() -> None:
    """8859/1 content decodes as Latin-1; ASCII as ASCII."""
    latin = "MSH|^~\\&|HIS|F|||20240501||ORM^O01|C1|P|2.5||||||8859/1\rPID|1||P1||Müller\r"
    d = decode(latin.encode("latin-1"))
    assert (d.charset, d.segments[1].comp(5)) == ("latin-1", "Müller")
    ascii_text = latin.replace("8859/1", "ASCII").replace("ü", "ue")
    assert decode(ascii_text.encode("ascii")).charset == "ascii"


def test_mllp_framing_and_terminators_are_tolerated() -> None:
    """MLLP start/end bytes, a BOM, \\n and \\r\\n terminators all decode the same."""
    plain = message(PID)
    text = plain.decode()
    variants = [
        b"\x0b" + plain + b"\x1c\x0d",
        b"\xef\xbb\xbf" + plain,
        text.replace("\r", "\n").encode(),
        text.replace("\r", "\r\n").encode(),
        plain.rstrip(b"\r"),
    ]
    expected = [s.name for s in decode(plain).segments]
    for raw in variants:
        d = decode(raw)
        assert [s.name for s in d.segments] == expected
        assert d.segments[1].comp(5) == "张三"


def test_custom_delimiters() -> None:
    """Delimiters come from MSH-1 and MSH-2, not from the defaults."""
    raw = "MSH#*@!$#HIS#H1###20240501##ORM*O01#C9#P#2.5\rPID#1##A*B@C##王$五*x\r".encode()
    d = decode(raw)
    assert d.header.separators == Separators("#", "*", "@", "!", "$")
    pid = d.segments[1]
    assert (pid.comp(3, 1), pid.comp(3, 2), pid.comp(3, 1, rep=2)) == ("A", "B", "C")
    assert pid.get(5, 1, 2) == "五"
    assert d.header.message_type == "ORM^O01"


def test_escapes_are_resolved() -> None:
    """\\F\\ \\S\\ \\T\\ \\R\\ \\E\\, hex in the message charset and \\.br\\ become text."""
    seps, raw = STANDARD, "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g\\XE4B8AD\\h\\H\\i\\N\\"
    assert unescape(raw, seps, "utf-8") == "a|b^c&d~e\\f\ng中hi"
    assert unescape("\\XD6D0\\", seps, "gb18030") == "中"
    assert unescape(r"x\.sp2\y\.sk3\z", seps, "utf-8") == "x\n\ny   z"


def test_unknown_and_broken_escapes_stay_literal() -> None:
    """An unknown sequence, bad hex or a lone escape character is kept as sent."""
    seps = STANDARD
    assert unescape(r"D:\report\1.jpg", seps, "utf-8") == r"D:\report\1.jpg"
    assert unescape(r"a\XZZ\b", seps, "utf-8") == r"a\XZZ\b"
    assert unescape(r"a\XFF\b", seps, "utf-8") == r"a\XFF\b"
    assert unescape("trailing\\", seps, "utf-8") == "trailing\\"


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_escape_round_trips(text: str) -> None:
    """unescape(escape(t)) == t for any text, after the receiver's trimming."""
    raw = escape(text, STANDARD, "utf-8")
    assert not set(raw) & {"|", "^", "~", "&", "\r", "\n"}
    assert unescape(raw.strip(" \t"), STANDARD, "utf-8") == text


def test_empty_and_null_read_as_none() -> None:
    """An empty field, padding, escaped white space and the HL7 null "" read as None."""
    pid = decode(message('PID|1||P1||""|   |\\X20\\|\\XE38080\\')).segments[1]
    assert [pid.comp(n) for n in (5, 6, 7, 8, 30)] == [None] * 5


@pytest.mark.parametrize(
    ("raw", "segment", "position", "code"),
    [
        (b"", "MSH", None, "100"),
        (b"\x0b\x1c\r", "MSH", None, "100"),
        (b"PID|1||P1\r", "MSH", None, "100"),
        (b"MSH", "MSH", 1, "102"),
        (b"MSHA^~\\&|x", "MSH", 1, "102"),
        (b"MSH|^~\\|HIS", "MSH", 2, "102"),
        (b"MSH|^^\\&|HIS", "MSH", 2, "102"),
        (b"MSH|^~\\|&|HIS", "MSH", 2, "102"),
        (b"MSH|^~|\\&|HIS", "MSH", 2, "102"),
        (b"MSH|^~a&|HIS", "MSH", 2, "102"),
        (b"MSH|^~\\&|HIS", "MSH", 9, "101"),
        (b"MSH|^~\\&|HIS|F|||20240501||ORM^O01", "MSH", 10, "101"),
        (b"MSH|^~\\&|HIS|F|||20240501||ORM^O01|C1", "MSH", 11, "101"),
        (b"MSH|^~\\&|HIS|F|||20240501||ORM^O01|C1|X|2.5", "MSH", 11, "202"),
        (b"MSH|^~\\&|HIS|F|||20240501||ORM^O01|C1|P", "MSH", 12, "101"),
        (b"MSH|^~\\&|HIS|F|||20240501||ORM^O01|C1|P|3.0", "MSH", 12, "203"),
        (b"MSH|^~\\&|HIS|F|||20240501||ADT^A01|C1|P|2.5", "MSH", 9, "200"),
        (b"MSH|^~\\&|HIS|F|||20240501||ORU^R30|C1|P|2.5", "MSH", 9, "201"),
        (b"MSH|^~\\&|HIS|F|||20240501||ORM|C1|P|2.5", "MSH", 9, "201"),
    ],
)
def test_header_rejections(raw: bytes, segment: str, position: int | None, code: str) -> None:
    """Each unreadable or unacceptable header is an AR naming the field and its 0357 code."""
    with pytest.raises(MessageRejected) as excinfo:
        decode(raw)
    rejected(excinfo, ack="AR", segment=segment, position=position, code=code)


def test_unknown_charset_is_rejected() -> None:
    """An MSH-18 we do not support is AR 103 naming MSH-18, listing the accepted values."""
    with pytest.raises(MessageRejected) as excinfo:
        decode(message(PID, charset="KOI8-R"))
    rejected(excinfo, ack="AR", segment="MSH", position=18, code="103")
    assert excinfo.value.value == "KOI8-R"
    assert "GB18030" in (excinfo.value.expected or "")


def test_bytes_invalid_in_the_declared_charset_name_the_offset() -> None:
    """GBK bytes declared as UTF-8 are AR naming MSH-18 and the first bad byte's offset."""
    raw = message(PID).decode().encode("gbk").replace(b"|CHN|UNICODE UTF-8", b"|CHN|UTF-8")
    with pytest.raises(UnicodeDecodeError) as first_bad:
        raw.decode("utf-8")
    expected = first_bad.value.start
    with pytest.raises(MessageRejected) as excinfo:
        decode(b"\x0b" + raw)
    rejected(excinfo, ack="AR", segment="MSH", position=18, code="102")
    assert excinfo.value.details["byte_offset"] == expected + 1
    assert f"byte {expected + 1}" in excinfo.value.message


def test_undecodable_without_declaration() -> None:
    """Bytes valid neither as UTF-8 nor as GB18030 are AR naming MSH-18."""
    raw = b"MSH|^~\\&|HIS|F|||20240501||ORM^O01|C1|P|2.5\rPID|1||\xff\xff\r"
    with pytest.raises(MessageRejected) as excinfo:
        decode(raw)
    rejected(excinfo, ack="AR", segment="MSH", position=18, code="102")


def test_oversize_is_rejected_before_reading() -> None:
    """A message above max_bytes is AR 207 whatever its content."""
    raw = message(PID)
    with pytest.raises(MessageRejected) as excinfo:
        decode(raw, max_bytes=len(raw) - 1)
    rejected(excinfo, ack="AR", segment="MSH", position=None, code="207")
    assert decode(raw, max_bytes=len(raw)).control_id == "C1"


def test_batches_and_bad_segment_ids_are_rejected() -> None:
    """A second MSH (a batch) or a line without a segment id is AR 100."""
    with pytest.raises(MessageRejected) as excinfo:
        decode(message(PID, message(PID).decode().rstrip("\r")))
    rejected(excinfo, ack="AR", segment="MSH", position=None, code="100")
    with pytest.raises(MessageRejected) as excinfo:
        decode(message("pid|1||x"))
    rejected(excinfo, ack="AR", segment="MSH", position=None, code="100")
    with pytest.raises(MessageRejected) as excinfo:
        decode(message("PIDX|1"))
    rejected(excinfo, ack="AR", segment="PID", position=None, code="100")


def test_non_bytes_input_is_an_input_error() -> None:
    """A str instead of bytes is an InputError naming the argument."""
    with pytest.raises(InputError) as excinfo:
        decode("MSH|^~\\&|")  # type: ignore[arg-type]
    assert excinfo.value.field == "raw"


def test_peek_header_reads_refused_messages() -> None:
    """peek_header recovers MSH-10 from a refused message and says which codec to answer in."""
    unsupported = message(PID, mtype="ADT^A01")
    h = peek_header(unsupported)
    assert h is not None
    assert (h.control_id, h.codec, h.message_type) == ("C1", "utf-8", "ADT^A01")
    unknown = peek_header(message(PID, charset="KOI8-R"))
    assert unknown is not None
    assert (unknown.control_id, unknown.codec) == ("C1", None)
    bad_bytes = message(PID).decode().encode("gbk")
    h2 = peek_header(bad_bytes)
    assert h2 is not None
    assert (h2.control_id, h2.codec) == ("C1", None)
    assert peek_header(b"") is None
    assert peek_header(b"hello") is None
