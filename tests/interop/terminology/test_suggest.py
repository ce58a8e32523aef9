"""Mapping suggestions over realistic Chinese dictionaries: accuracy, traps and rules."""

from __future__ import annotations

import csv
import io

import pytest

from medledger.errors import InputError
from medledger.interop.terminology import (
    DictItem,
    Mapping,
    Suggestion,
    analyse,
    compare,
    suggest,
)
from medledger.interop.terminology.suggest import CONFLICT_CAP

from .conftest import DATA


def _top(suggestions: list[Suggestion], code: str) -> str | None:
    """The code of the top candidate suggested for a source code, if any."""
    found = next(s for s in suggestions if s.source.code == code)
    return found.candidates[0].target.code if found.candidates else None


def test_top_suggestion_is_the_known_mapping(
    member_items: list[DictItem], central_items: list[DictItem], known_pairs: list[Mapping]
) -> None:
    """On ~50 member and ~70 central items the confirmed target is the top suggestion ≥ 90 %."""
    truth = {p.source_code: p.target_code for p in known_pairs}
    suggestions = suggest(member_items, central_items)
    mapped = [s for s in suggestions if truth[s.source.code] is not None]
    right = [
        s for s in mapped if s.candidates and s.candidates[0].target.code == truth[s.source.code]
    ]
    accuracy = len(right) / len(mapped)
    print(f"\nsuggestion accuracy on the fixture: {len(right)}/{len(mapped)} = {accuracy:.1%}")
    assert len(mapped) == 47
    assert accuracy >= 0.9


def test_items_without_counterpart_get_no_suggestion(
    member_items: list[DictItem], central_items: list[DictItem], known_pairs: list[Mapping]
) -> None:
    """Items the central hospital does not offer (骨密度, 微量元素) get no candidate at all."""
    unmatched = {p.source_code for p in known_pairs if p.equivalence == "unmatched"}
    assert unmatched == {"JC0999", "JY0099"}
    suggestions = suggest(member_items, central_items)
    assert all(_top(suggestions, code) is None for code in unmatched)


def test_known_traps_are_never_the_top_suggestion(
    member_items: list[DictItem], central_items: list[DictItem], traps: list[dict[str, str]]
) -> None:
    """平扫/增强, 左/右, 胃镜/肠镜, 血常规/尿常规 and the other traps never come first."""
    suggestions = suggest(member_items, central_items, limit=5, cutoff=0)
    for trap in traps:
        assert _top(suggestions, trap["member_code"]) != trap["trap_code"], trap["why"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("胸部CT平扫", "胸部CT增强"),
        ("头颅MR平扫", "颅脑磁共振增强"),
        ("上腹部CT平扫", "上腹部CT平扫+增强"),
        ("左膝关节MRI平扫", "膝关节MR平扫(右)"),
        ("电子胃镜", "结肠镜检查"),
        ("血常规", "尿液分析"),
        ("肝功能", "肾功能"),
        ("双下肢动脉彩超", "双下肢静脉彩色多普勒超声"),
    ],
)
def test_clinically_different_items_score_low(a: str, b: str) -> None:
    """A plain scan scores at most 45 as a contrast scan (and likewise for every trap)."""
    result = compare(analyse(a), analyse(b))
    assert result.score <= CONFLICT_CAP
    assert any("不一致" in reason for reason in result.reasons)


def test_held_out_names_mostly_find_their_target(central_items: list[DictItem]) -> None:
    """Names written separately from the tuning fixture still find their target ≥ 85 %."""
    rows = list(csv.DictReader(io.StringIO((DATA / "heldout.csv").read_text(encoding="utf-8"))))
    items = [DictItem(f"H{i:03d}", r["name"], r["kind"]) for i, r in enumerate(rows)]  # type: ignore[arg-type]
    suggestions = suggest(items, central_items)
    right = sum(
        _top(suggestions, i.code) == r["expected_code"] for i, r in zip(items, rows, strict=True)
    )
    print(f"\nsuggestion accuracy on held-out names: {right}/{len(rows)} = {right / len(rows):.1%}")
    assert right / len(rows) >= 0.85


def test_kind_must_match_and_inactive_targets_are_never_suggested(
    central_items: list[DictItem],
) -> None:
    """A radiology item never gets a lab candidate; an inactive (停用) item is never offered."""
    [odd] = suggest([DictItem("X1", "血常规", "radiology")], central_items, cutoff=0, limit=100)
    assert all(c.target.kind in ("radiology", None) for c in odd.candidates)
    [ct] = suggest([DictItem("X2", "胸部CT平扫(旧)", "radiology")], central_items, limit=100)
    assert "300199" not in {c.target.code for c in ct.candidates}
    [unknown] = suggest([DictItem("X3", "血常规")], central_items)
    assert unknown.candidates[0].target.code == "400101"


def test_identifiers_aliases_and_pinyin_are_reasons() -> None:
    """Same national code or LOINC wins outright; an alias match says it was an alias."""
    targets = [
        DictItem("400101", "血细胞分析(五分类)", "lab", aliases=("血象",), loinc="58410-2"),
        DictItem("400111", "尿液分析", "lab", national_code="250101001"),
    ]
    sources = [
        DictItem("A", "全血细胞计数+五分类", "lab", loinc="58410-2"),
        DictItem("B", "小便检查", "lab", national_code="250101001"),
        DictItem("C", "血象", "lab"),
    ]
    by_code = {s.source.code: s.candidates[0] for s in suggest(sources, targets)}
    assert (by_code["A"].target.code, by_code["A"].basis, by_code["A"].score) == (
        "400101",
        "loinc",
        100,
    )
    assert (by_code["B"].target.code, by_code["B"].basis) == ("400111", "national_code")
    assert "250101001" in by_code["B"].reason
    assert (by_code["C"].target.code, by_code["C"].basis) == ("400101", "alias")
    assert "血象" in by_code["C"].reason


def test_mapped_items_are_skipped_and_ties_keep_dictionary_order(
    member_items: list[DictItem], central_items: list[DictItem]
) -> None:
    """Already mapped codes get no suggestion; equal scores keep the targets' order."""
    codes = {s.source.code for s in suggest(member_items, central_items, mapped={"JC0101"})}
    assert "JC0101" not in codes
    assert len(codes) == len(member_items) - 1
    twins = [DictItem("T2", "胸部CT平扫", "radiology"), DictItem("T1", "胸部CT平扫", "radiology")]
    [result] = suggest([DictItem("S", "胸部CT平扫", "radiology")], twins)
    assert [c.target.code for c in result.candidates] == ["T2", "T1"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"limit": 0}, "limit"), ({"limit": True}, "limit"), ({"cutoff": 101}, "cutoff")],
)
def test_bad_limits_are_input_errors(kwargs: dict[str, object], field: str) -> None:
    """limit must be a whole number ≥ 1 and cutoff a score from 0 to 100."""
    with pytest.raises(InputError) as caught:
        suggest([], [], **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
