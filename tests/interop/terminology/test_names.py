"""Normalisation of Chinese exam and lab item names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.interop.terminology import analyse, normalize


def _same(a: str, b: str) -> bool:
    """Tell whether two names analyse to the same core, qualifiers and features."""
    x, y = analyse(a), analyse(b)
    return (x.core, x.qualifiers, x.features) == (y.core, y.qualifiers, y.features)


def test_normalize_folds_width_case_brackets_and_spaces() -> None:
    """Full-width letters, brackets and spaces become half-width; every bracket becomes ()."""
    assert normalize("胸部ＣＴ（急）") == "胸部ct(急)"
    assert normalize("血常规【门诊】〔复查〕") == "血常规(门诊)(复查)"
    assert normalize("  头颅　ＭＲＩ  平扫 ") == "头颅 mri 平扫"


@pytest.mark.parametrize(
    "names",
    [
        ("胸部CT平扫", "胸部CT(平扫)", "胸部ＣＴ平扫", "胸部 CT 平扫"),
        ("腹部彩超", "腹部彩色超声", "腹部彩色多普勒超声", "腹部彩色多普勒"),
        ("血常规", "血细胞分析", "全血细胞计数", "血常规检查"),
        ("肝功能", "肝功", "肝功能全套"),
        ("肾功能", "肾功"),
        ("头颅MR平扫", "颅脑磁共振平扫", "头颅MRI平扫", "头颅核磁平扫", "头部磁共振成像平扫"),
        ("胸部正位片", "胸部DR正位", "胸部X线正位", "胸部数字化X线摄影(正位)"),
        ("冠脉CTA", "冠状动脉CT血管成像"),
        ("电子胃镜", "胃镜检查", "胃镜"),
        ("电子肠镜", "结肠镜检查", "肠镜"),
        ("大便常规+潜血", "粪便常规＋隐血"),
        ("乙肝两对半", "乙肝五项"),
        ("左膝关节MRI平扫", "膝关节MR平扫(左)", "膝关节MR平扫【左侧】"),
    ],
)
def test_equivalent_names_analyse_alike(names: tuple[str, ...]) -> None:
    """Spellings hospitals use for the same item have the same core, qualifiers and features."""
    for other in names[1:]:
        assert _same(names[0], other), (names[0], other, analyse(names[0]), analyse(other))


@pytest.mark.parametrize(
    ("a", "b", "family"),
    [
        ("胸部CT平扫", "胸部CT增强", "contrast"),
        ("上腹部CT平扫+增强", "上腹部CT平扫", "contrast"),
        ("膝关节MR平扫(左)", "膝关节MR平扫(右)", "side"),
        ("电子胃镜", "电子肠镜", "modality"),
        ("无痛胃镜", "无痛结肠镜", "modality"),
        ("头颅CT", "头颅MRI", "modality"),
        ("血常规", "尿常规", "routine"),
        ("肝功能", "肾功能", "function"),
        ("双下肢动脉彩超", "双下肢静脉彩超", "vessel"),
        ("子宫附件彩超(经阴道)", "子宫附件彩超(经腹)", "route"),
        ("甲功三项", "甲功五项", "count"),
        ("腰椎MRI", "颈椎MRI", "spine"),
        ("胸部DR正位", "胸部DR正侧位", "view"),
    ],
)
def test_discriminators_are_told_apart(a: str, b: str, family: str) -> None:
    """Items that look alike but differ clinically carry different discriminator values."""
    x, y = analyse(a), analyse(b)
    assert x.feature(family) is not None
    assert y.feature(family) is not None
    assert x.feature(family) != y.feature(family)


def test_word_order_is_seen_by_the_bag() -> None:
    """Reordered names (CT胸部平扫) differ in core but share the order-blind bag."""
    assert analyse("CT胸部平扫").bag == analyse("胸部CT平扫").bag
    assert analyse("CT胸部平扫").core != analyse("胸部CT平扫").core


def test_bracketed_qualifiers_are_kept_apart_from_the_core() -> None:
    """(急), 【门诊】 and (五分类) go to the qualifiers; a bracket repeating the name does not."""
    name = analyse("血常规【门诊】（急）")
    assert (name.core, name.qualifiers) == ("血常规", ("急", "门诊"))
    assert analyse("血细胞分析(五分类)").qualifiers == ("五分类",)
    assert analyse("C-反应蛋白(CRP)").qualifiers == ()


_ASCII = st.sampled_from(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789()+"))
_HAN = st.sampled_from(list("胸部腹头颅平扫增强彩超血常规尿肝肾功左右侧胃肠镜检查项目急门诊"))


@settings(max_examples=200)
@given(st.lists(st.one_of(_ASCII, _HAN), min_size=1, max_size=20).map("".join))
def test_full_width_spelling_never_changes_the_analysis(text: str) -> None:
    """Writing the ASCII letters, digits and brackets full-width gives the same analysis."""
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isascii() else c for c in text)
    assert _same(text, wide)


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_analyse_takes_any_text(text: str) -> None:
    """Any text at all is analysed; the core holds only letters and digits."""
    name = analyse(text)
    assert all(c.isalnum() for c in name.core)
    assert all(q and all(c.isalnum() for c in q) for q in name.qualifiers)
