"""Suggest mappings (对照建议) from one dictionary to another, for a person to confirm.

For each source item not yet mapped, :func:`suggest` ranks the target items by a score from 0
to 100 with a reason in Chinese. Scores come from, in order of strength:

1. the same national code (国家/医保项目编码) or LOINC code: 100;
2. name similarity (rapidfuzz) of the names as :func:`~.names.analyse` takes them apart, over
   every name and alias of both items: ``0.9 × core + 0.1 × qualifiers``, where the core score
   is the best of plain, partial (containment) and order-blind similarity;
3. discriminators: when both names state a family (平扫/增强, 左/右, 胃镜/结肠镜, 血常规/尿常规…)
   and the values differ, the score is capped at 45, far below a real match; when only one
   name states it, a few points are taken off.

Items of different kinds (检验 vs 放射…) are never candidates when both kinds are known, and
inactive targets are never suggested. Nothing is mapped automatically.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, process

from medledger.errors import InputError
from medledger.interop.model import KINDS
from medledger.interop.terminology._vocab import (
    FAMILY_LABELS,
    MISSING_PENALTY,
    MISSING_VALUE_PENALTY,
)
from medledger.interop.terminology.codesystem import DictItem
from medledger.interop.terminology.names import ItemName, analyse

__all__ = ["CONFLICT_CAP", "Basis", "Candidate", "Comparison", "Suggestion", "compare", "suggest"]

Basis = Literal["national_code", "loinc", "name", "alias"]
CONFLICT_CAP = 45.0
"""Highest score of two names whose discriminators disagree (平扫 vs 增强, 左 vs 右…)."""
_POOL = 25  # candidates per scorer taken from rapidfuzz's C++ search before the full comparison


@dataclass(frozen=True, slots=True)
class Comparison:
    """How alike two item names are: a score from 0 to 100 and why."""

    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One target item suggested for a source item."""

    target: DictItem
    score: float
    reason: str
    basis: Basis


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The best candidates for one unmapped source item (empty when none reaches the cutoff)."""

    source: DictItem
    candidates: tuple[Candidate, ...]


def _similarity(a: str, b: str, a_bag: str, b_bag: str) -> float:
    """Best of plain, containment and order-blind similarity of two texts."""
    if not a or not b:
        return 0.0
    plain = fuzz.ratio(a, b)
    short, long = sorted((len(a), len(b)))
    partial = 0.0
    if short >= 2:  # one character inside another name says nothing
        partial = fuzz.partial_ratio(a, b) * (0.75 + 0.25 * short / long)
    return max(plain, partial, fuzz.ratio(a_bag, b_bag) * 0.95)


def _core_score(a: ItemName, b: ItemName) -> float:
    """Similarity of the cores, or (discounted) of the whole names when brackets carry them."""
    core = _similarity(a.core, b.core, a.bag, b.bag)
    if a.whole == a.core and b.whole == b.core:
        return core
    return max(core, 0.9 * _similarity(a.whole, b.whole, a.whole_bag, b.whole_bag))


def _qualifier_score(a: ItemName, b: ItemName) -> float:
    """Similarity of the bracketed qualifiers: equal 100, one side silent 50."""
    if a.qualifiers == b.qualifiers:
        return 100.0
    if not a.qualifiers or not b.qualifiers:
        return 50.0
    return fuzz.ratio("".join(a.qualifiers), "".join(b.qualifiers))


def compare(a: ItemName, b: ItemName) -> Comparison:
    """Score how well name ``b`` stands for name ``a`` (0–100) and say why, in Chinese."""
    core = _core_score(a, b)
    score = 0.9 * core + 0.1 * _qualifier_score(a, b)
    same = (a.core, a.qualifiers, a.features) == (b.core, b.qualifiers, b.features)
    reasons = ["名称规范化后一致" if same else f"名称相似度 {core:.0f}"]
    conflicts = 0
    for family in sorted({f for f, _ in a.features} | {f for f, _ in b.features}):
        mine, theirs = a.feature(family), b.feature(family)
        label = FAMILY_LABELS[family]
        if mine is not None and theirs is not None:
            if mine != theirs:
                conflicts += 1
                reasons.append(f"{label}不一致")
            continue
        value = mine if mine is not None else theirs
        assert value is not None
        score -= MISSING_VALUE_PENALTY.get((family, value), MISSING_PENALTY[family])
        reasons.append(f"一方未注明{label}")
    if conflicts:
        score = min(score, CONFLICT_CAP) - 5.0 * (conflicts - 1)
    if not same and a.qualifiers != b.qualifiers:
        reasons.append("括号内附注不同")
    return Comparison(round(max(0.0, min(100.0, score)), 1), tuple(reasons))


def _names(item: DictItem) -> list[tuple[ItemName, bool]]:
    """The analysed display and aliases of an item; the flag marks an alias."""
    return [(analyse(item.display), False), *((analyse(a), True) for a in item.aliases)]


class _Targets:
    """The target items, analysed once, with per-kind choice lists for rapidfuzz."""

    def __init__(self, items: list[DictItem]) -> None:
        """Analyse every target name once and index them by kind and by code."""
        self.items = items
        self.names = [(i, name, alias) for i, t in enumerate(items) for name, alias in _names(t)]
        self.by_kind: dict[str | None, list[int]] = {None: list(range(len(self.names)))}
        for kind in KINDS:
            self.by_kind[kind] = [
                n for n, (i, _, _) in enumerate(self.names) if items[i].kind in (None, kind)
            ]
        self.by_code: dict[tuple[str, str], list[int]] = {}
        for i, t in enumerate(items):
            for basis, code in (("national_code", t.national_code), ("loinc", t.loinc)):
                if code is not None:
                    self.by_code.setdefault((basis, code), []).append(i)

    def pool(self, name: ItemName, kind: str | None, size: int) -> set[int]:
        """Name indexes worth a full comparison: the best few by each fast scorer."""
        allowed = self.by_kind[kind]
        found: set[int] = set()
        for attr, scorer in (
            ("core", fuzz.ratio),
            ("core", fuzz.partial_ratio),
            ("bag", fuzz.ratio),
        ):
            choices = [getattr(self.names[n][1], attr) for n in allowed]
            for _, _, pos in process.extract(
                getattr(name, attr), choices, scorer=scorer, limit=size
            ):
                found.add(allowed[pos])
        return found


def _rank(source: DictItem, targets: _Targets, size: int) -> dict[int, Candidate]:
    """Score every plausible target of one source item; best candidate per target."""
    best: dict[int, Candidate] = {}

    def offer(index: int, score: float, reason: str, basis: Basis) -> None:
        """Keep a candidate if it beats the target's best so far (same pinyin code adds 3)."""
        target = targets.items[index]
        if (
            score > CONFLICT_CAP  # a tie-breaker only: never lifts a clinical mismatch
            and source.pinyin is not None
            and source.pinyin.casefold() == (target.pinyin or "").casefold()
        ):
            score, reason = min(100.0, score + 3.0), reason + "；拼音码一致"
        current = best.get(index)
        if current is None or score > current.score:
            best[index] = Candidate(target, round(score, 1), reason, basis)

    codes: tuple[tuple[Basis, str | None, str], ...] = (
        ("national_code", source.national_code, "国家编码"),
        ("loinc", source.loinc, "LOINC"),
    )
    for basis, code, label in codes:
        if code is not None:
            for index in targets.by_code.get((basis, code), ()):
                offer(index, 100.0, f"{label} 一致 ({code})", basis)
    for name, alias in _names(source):
        for n in targets.pool(name, source.kind, size):
            index, target_name, target_alias = targets.names[n]
            result = compare(name, target_name)
            reason = "；".join(result.reasons)
            if alias or target_alias:
                reason = f"别名「{name.text}」≈「{target_name.text}」：{reason}"
            offer(index, result.score, reason, "alias" if alias or target_alias else "name")
    return best


def suggest(
    source_items: Iterable[DictItem],
    target_items: Iterable[DictItem],
    *,
    limit: int = 3,
    cutoff: float = 60.0,
    mapped: Collection[str] = (),
) -> list[Suggestion]:
    """Suggest up to ``limit`` targets scoring at least ``cutoff`` for each unmapped source item.

    ``mapped`` holds the source codes that already have a mapping (they are skipped). Ties keep
    the targets' dictionary order. Requires ``limit`` ≥ 1 and 0 ≤ ``cutoff`` ≤ 100.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InputError(
            "limit: expected a positive whole number",
            field="limit",
            value=limit,
            expected="an integer ≥ 1",
        )
    if not isinstance(cutoff, int | float) or not 0 <= cutoff <= 100:
        raise InputError(
            "cutoff: expected a score from 0 to 100",
            field="cutoff",
            value=cutoff,
            expected="a number from 0 to 100",
        )
    targets = _Targets([t for t in target_items if t.active])
    size = max(_POOL, limit * 5)
    out: list[Suggestion] = []
    for source in source_items:
        if source.code in mapped:
            continue
        best = _rank(source, targets, size)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1].score, kv[0]))
        chosen = tuple(c for _, c in ranked if c.score >= cutoff)[:limit]
        out.append(Suggestion(source, chosen))
    return out
