"""Normalise Chinese exam and lab item names so that two hospitals' names can be compared.

:func:`normalize` folds width and case (``ＣＴ`` → ``ct``, ``（急）`` → ``(急)``), unifies
brackets (``【门诊】`` → ``(门诊)``) and whitespace. :func:`analyse` goes further and splits a
name into

- ``core``: the name's identity, with equivalent terms made equal (彩色多普勒超声 → 彩超,
  血细胞分析 → 血常规, 肝功能 → 肝功, 磁共振/MR → mri, X线 → dr), noise words dropped
  (检查, 电子, 全套…) and punctuation removed;
- ``qualifiers``: what brackets held (``(急)``, ``【门诊】``, ``(五分类)``), compared with less
  weight;
- ``features``: discriminators that must agree (平扫/增强, 左/右, 胃镜/结肠镜, 血常规/尿常规,
  动脉/静脉, 三项/五项…); see :mod:`medledger.interop.terminology._vocab`. Panel sizes
  (``四项``) are compared as the feature ``count`` only.

``analyse("胸部CT(平扫)")`` and ``analyse("胸部ＣＴ平扫")`` are equal; ``analyse("胸部CT增强")``
has the same core but a different ``contrast`` feature.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from medledger.interop.terminology._vocab import (
    ASCII_WORDS,
    FAMILIES,
    REMOVABLE,
    STOPWORDS,
    SYNONYMS,
)

__all__ = ["ItemName", "analyse", "normalize"]

_OPEN = "【〔〖［｛《〈「『[{<"
_CLOSE = "】〕〗］｝》〉」』]}>"
_BRACKETS = str.maketrans(_OPEN + _CLOSE, "(" * len(_OPEN) + ")" * len(_CLOSE))


def _pattern(words: Iterable[str]) -> re.Pattern[str]:
    """One alternation, longest word first; ASCII word ends must not touch other letters."""
    parts = []
    for word in sorted(set(words), key=lambda w: (-len(w), w)):
        part = re.escape(word)
        if word[0].isascii() and word[0].isalpha():
            part = "(?<![a-z])" + part
        if word[-1].isascii() and word[-1].isalpha():
            part += "(?![a-z])"
        parts.append(part)
    return re.compile("|".join(parts))


_SYNONYM_RE = _pattern(SYNONYMS)
_ASCII_RE = re.compile(r"[a-z][a-z0-9]*")
_FEATURE_OF = {
    word: (family, value) for family, words in FAMILIES.items() for word, value in words.items()
}
_FEATURE_RE = _pattern(_FEATURE_OF)
_COUNT_RE = re.compile(r"([一二两三四五六七八九十]+|\d+)项")
_STOP_RE = re.compile("|".join(map(re.escape, STOPWORDS)) + "|部(?!位)")
_INNER_BRACKETS = re.compile(r"\(([^()]*)\)")
_SPACES_BETWEEN_WORDS = re.compile(r"(?<=[a-z0-9])\s+(?=[a-z0-9])")
_TOKEN_RE = re.compile(r"[a-z]+|\d+|.")
_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


@dataclass(frozen=True, slots=True)
class ItemName:
    """An item name taken apart for comparison (see the module docstring)."""

    text: str
    core: str
    qualifiers: tuple[str, ...]
    features: tuple[tuple[str, str], ...]
    bag: str
    """The core's tokens (ASCII words, numbers, single characters) sorted: order-blind text."""
    whole: str
    """The core followed by the qualifiers: what the name says, brackets included."""
    whole_bag: str

    def feature(self, family: str) -> str | None:
        """Return this name's value of a discriminator family, None if the name is silent."""
        for name, value in self.features:
            if name == family:
                return value
        return None


def normalize(text: str) -> str:
    """Fold width and case, make every bracket ``()`` and collapse whitespace."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_BRACKETS)
    return " ".join(folded.split())


def _number(text: str) -> int:
    """Read a small Chinese or Arabic number (三 → 3, 十二 → 12)."""
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        return _DIGITS.get(tens, 1) * 10 + _DIGITS.get(ones, 0)
    return _DIGITS.get(text[-1], 0)


def _bag(text: str) -> str:
    """Sort a text's tokens (ASCII words, numbers, characters): order no longer matters."""
    return "".join(sorted(_TOKEN_RE.findall(text)))


def _clean(text: str) -> str:
    """Drop noise words and everything but letters and digits."""
    return "".join(c for c in _STOP_RE.sub("", text) if c.isalnum())


def analyse(text: str) -> ItemName:
    """Take an item name apart into core, qualifiers and discriminating features."""
    folded = _SPACES_BETWEEN_WORDS.sub("-", normalize(text)).replace(" ", "")
    folded = _SYNONYM_RE.sub(lambda m: SYNONYMS[m.group(0)], folded)
    folded = _ASCII_RE.sub(lambda m: ASCII_WORDS.get(m.group(0), m.group(0)), folded)
    brackets: list[str] = []

    def bracket(match: re.Match[str]) -> str:
        """Keep a bracket's content aside and leave a separator in its place."""
        brackets.append(match.group(1))
        return "|"

    found = 1
    while found:  # innermost brackets first, so nested ones come apart too
        folded, found = _INNER_BRACKETS.subn(bracket, folded)
    found_values: dict[str, set[str]] = {}

    def take(match: re.Match[str]) -> str:
        """Record a discriminator; removable ones leave only a separator behind."""
        family, value = _FEATURE_OF[match.group(0)]
        found_values.setdefault(family, set()).add(value)
        return "|" if family in REMOVABLE else match.group(0)

    def count(match: re.Match[str]) -> str:
        """Record a panel size (四项 → 4) and take it out of the text."""
        found_values.setdefault("count", set()).add(str(_number(match.group(1))))
        return "|"

    parts = [_COUNT_RE.sub(count, _FEATURE_RE.sub(take, part)) for part in [folded, *brackets]]
    cleaned = [_clean(part.replace("(", "").replace(")", "")) for part in parts]
    core = cleaned[0]
    # a bracket repeating the name, as in C-反应蛋白(CRP), qualifies nothing
    qualifiers = tuple(sorted({q for q in cleaned[1:] if q and q not in core}))
    features = tuple(sorted((f, "+".join(sorted(v))) for f, v in found_values.items()))
    whole = core + "".join(qualifiers)
    return ItemName(text, core, qualifiers, features, _bag(core), whole, _bag(whole))
