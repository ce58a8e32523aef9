"""Hypothesis strategies for dictionaries and mappings with realistic Chinese item names."""

from __future__ import annotations

from hypothesis import strategies as st

from medledger.interop.model import KINDS
from medledger.interop.terminology import EQUIVALENCES, DictItem, Mapping

_HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
_MARKS = st.sampled_from(list("ＣＴMRIDR()（）【】[]+-=@'\",，、；:：.· 0123456789abcxyzＸ×—"))
_ALIAS_TEXT = st.text(st.one_of(_HAN, _HAN, _MARKS), min_size=1, max_size=24).map(str.strip)


def _clean(text: str) -> bool:
    """Keep non-empty texts only."""
    return bool(text)


names = st.one_of(_ALIAS_TEXT, st.sampled_from(["胸部CT平扫", "血常规(急)", "=SUM(A1)", "'引号"]))
names = names.filter(_clean)
aliases = _ALIAS_TEXT.filter(_clean)
display_names = st.one_of(names, names.map(lambda n: n + "|分隔"))
codes = st.from_regex(r"[=+\-@']?[A-Za-z0-9][A-Za-z0-9.\-]{0,10}", fullmatch=True)

items = st.builds(
    DictItem,
    code=codes,
    display=display_names,
    kind=st.none() | st.sampled_from(KINDS),
    pinyin=st.none() | st.from_regex(r"[A-Z]{1,8}", fullmatch=True),
    aliases=st.lists(aliases, unique=True, max_size=3).map(tuple),
    active=st.booleans(),
    loinc=st.none() | st.from_regex(r"[0-9]{1,6}-[0-9]", fullmatch=True),
    national_code=st.none() | st.from_regex(r"[0-9]{6,15}", fullmatch=True),
)
dictionaries = st.lists(items, unique_by=lambda i: i.code, max_size=12)


@st.composite
def mapping_lists(draw: st.DrawFn) -> list[Mapping]:
    """Pairs grouped by source code, one name per source code, as a ConceptMap holds them."""
    sources = draw(st.lists(codes, unique=True, max_size=8))
    out: list[Mapping] = []
    for source in sources:
        name = draw(st.none() | names)
        if draw(st.integers(0, 4)) == 0:
            out.append(Mapping(source, name, None, None, "unmatched", draw(st.none() | names)))
            continue
        for target in draw(st.lists(codes, unique=True, min_size=1, max_size=3)):
            equivalence = draw(st.sampled_from([e for e in EQUIVALENCES if e != "unmatched"]))
            needs_comment = equivalence in ("narrower", "inexact")
            comment = draw(names) if needs_comment else draw(st.none() | names)
            out.append(Mapping(source, name, target, draw(st.none() | names), equivalence, comment))
    return out
