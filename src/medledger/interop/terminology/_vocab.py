"""Vocabulary of Chinese hospital item names: equivalent terms, noise words and discriminators.

Data only, used by :mod:`medledger.interop.terminology.names`. Every entry is written the way
text looks after NFKC and case folding (``ＣＴ`` → ``ct``). Synonyms are applied longest first in
one pass, so an entry may map a phrase to itself to keep a shorter entry from firing inside it
(``结肠镜`` keeps ``肠镜`` → ``结肠镜`` from producing ``结结肠镜``).

A *discriminator* family holds words that tell otherwise similar items apart: a plain scan is
not a contrast scan, left is not right, a gastroscope is not a colonoscope, blood routine is not
urine routine. Families marked removable are taken out of the name text and compared only as
features; the others stay in the text too.
"""

from __future__ import annotations

__all__ = [
    "ASCII_WORDS",
    "FAMILIES",
    "FAMILY_LABELS",
    "MISSING_PENALTY",
    "MISSING_VALUE_PENALTY",
    "REMOVABLE",
    "STOPWORDS",
    "SYNONYMS",
]

SYNONYMS: dict[str, str] = {
    # ultrasound: 彩超 ≈ 彩色超声 ≈ 彩色多普勒超声; B超 ≈ 超声
    "彩色多普勒超声": "彩超", "彩色多普勒": "彩超", "多普勒超声": "彩超", "彩色超声": "彩超",
    "超声心动图": "心脏彩超", "心脏超声": "心脏彩超", "心脏彩色超声": "心脏彩超",
    "b型超声": "超声", "b超": "超声",
    # radiology: CT, MRI/MR/磁共振, DR/X线, mammography, vessels
    "电子计算机断层扫描": "ct", "计算机断层扫描": "ct", "计算机断层": "ct",
    "ct血管成像": "cta", "ct血管造影": "cta",
    "磁共振血管成像": "mra", "mr血管成像": "mra", "mri血管成像": "mra",
    "核磁共振成像": "mri", "磁共振成像": "mri", "核磁共振": "mri", "磁共振": "mri", "核磁": "mri",
    "乳腺x线摄影": "乳腺钼靶", "乳腺x线": "乳腺钼靶", "钼靶x线摄影": "钼靶", "钼靶摄影": "钼靶",
    "数字化x线摄影": "dr", "数字x线摄影": "dr", "x线摄影": "dr", "x线摄片": "dr", "x线片": "dr",
    "x线": "dr", "x光片": "dr", "x光": "dr", "摄片": "dr", "平片": "dr",
    "正侧位片": "正侧位dr", "正位片": "正位dr", "侧位片": "侧位dr", "斜位片": "斜位dr",
    "胸片": "胸部dr",
    "颅脑": "头颅", "头部": "头颅", "冠状动脉": "冠脉",
    # endoscopy
    "结肠镜": "结肠镜", "肠镜": "结肠镜", "纤支镜": "支气管镜", "上消化道内镜": "胃镜",
    # lab
    "全血细胞计数": "血常规", "血细胞计数": "血常规", "血细胞分析": "血常规", "血液分析": "血常规",
    "血液常规": "血常规",
    "尿液分析": "尿常规", "尿液常规": "尿常规", "小便常规": "尿常规",
    "大便常规": "粪常规", "粪便常规": "粪常规", "便常规": "粪常规", "潜血": "隐血",
    "肝功能": "肝功", "肾功能": "肾功", "甲状腺功能": "甲功", "心功能": "心功", "肺功能": "肺功",
    "凝血功能": "凝血四项", "凝血常规": "凝血四项",
    "乙型肝炎病毒标志物": "乙肝五项", "乙肝病毒标志物": "乙肝五项", "乙肝两对半": "乙肝五项",
    "两对半": "乙肝五项",
    "超敏c-反应蛋白": "超敏crp", "超敏c反应蛋白": "超敏crp", "hs-crp": "超敏crp",
    "c-反应蛋白": "crp", "c反应蛋白": "crp",
    "血葡萄糖": "血糖", "葡萄糖": "血糖", "心肌酶谱": "心肌酶",
    # pathology
    "组织病理学": "常规病理", "组织病理": "常规病理", "活检病理": "常规病理",
    "病理活检": "常规病理",
    "快速冰冻切片": "冰冻", "冰冻切片": "冰冻", "快速冰冻": "冰冻",
    "宫颈液基薄层细胞学": "tct", "液基薄层细胞学": "tct", "薄层液基细胞学": "tct",
    "液基细胞学": "tct", "免疫组织化学": "免疫组化",
}  # fmt: skip

ASCII_WORDS: dict[str, str] = {
    "mr": "mri", "nmr": "mri", "cr": "dr", "hba1c": "糖化血红蛋白", "ob": "隐血",
    "hscrp": "超敏crp",
}  # fmt: skip
"""Whole ASCII words (letters then letters or digits) and what they stand for."""

STOPWORDS: tuple[str, ...] = (
    "检查", "检测", "测定", "项目", "全套", "全项", "电子", "纤维", "试验", "鉴定",
)  # fmt: skip
"""Words that add nothing to an item's identity (电子胃镜 is a 胃镜)."""

# family: {word: value}. Longest words win where words overlap.
FAMILIES: dict[str, dict[str, str]] = {
    "contrast": {
        "平扫+增强": "both", "平扫加增强": "both", "平扫及增强": "both", "平扫和增强": "both",
        "平扫与增强": "both", "平扫增强": "both", "增强+平扫": "both", "增强及平扫": "both",
        "增强": "enhanced", "平扫": "plain",
    },
    "side": {"双侧": "both", "左侧": "left", "右侧": "right", "左": "left", "右": "right"},
    "view": {"正侧位": "ap+lat", "正位": "ap", "侧位": "lat", "斜位": "oblique"},
    "sedation": {"无痛": "sedated", "静脉麻醉": "sedated", "麻醉": "sedated", "普通": "plain"},
    "route": {"经阴道": "vaginal", "经腹部": "abdominal", "经腹": "abdominal",
              "经直肠": "rectal", "经食管": "oesophageal"},
    "fasting": {"空腹": "fasting", "餐后2小时": "postprandial", "餐后": "postprandial"},
    "quant": {"定量": "quantitative", "定性": "qualitative"},
    "modality": {
        "cta": "cta", "mra": "mra", "ct": "ct", "mri": "mri", "dr": "dr", "pet": "pet",
        "钼靶": "mammography", "彩超": "ultrasound", "超声": "ultrasound",
        "胃镜": "gastroscopy", "结肠镜": "colonoscopy", "支气管镜": "bronchoscopy",
        "十二指肠镜": "duodenoscopy", "小肠镜": "enteroscopy", "喉镜": "laryngoscopy",
        "鼻咽镜": "nasopharyngoscopy", "膀胱镜": "cystoscopy", "宫腔镜": "hysteroscopy",
        "阴道镜": "colposcopy",
    },
    "routine": {"血常规": "blood", "尿常规": "urine", "粪常规": "stool", "白带常规": "leucorrhea",
                "脑脊液常规": "csf", "胸腹水常规": "effusion", "精液常规": "semen"},
    "function": {"肝功": "liver", "肾功": "kidney", "甲功": "thyroid", "心功": "heart",
                 "肺功": "lung"},
    "vessel": {"动静脉": "both", "动脉": "artery", "静脉": "vein"},
    "sensitivity": {"超敏": "high"},
    "spine": {"颈椎": "cervical", "胸椎": "thoracic", "腰椎": "lumbar", "胸腰椎": "thoracolumbar",
              "腰骶椎": "lumbosacral", "骶尾椎": "sacrococcygeal"},
}  # fmt: skip

REMOVABLE: frozenset[str] = frozenset(
    {"contrast", "side", "view", "sedation", "route", "fasting", "quant"}
)
"""Families compared only as features: their words are taken out of the name text."""

MISSING_PENALTY: dict[str, float] = {
    "contrast": 15, "side": 8, "view": 8, "sedation": 8, "route": 10, "fasting": 5,
    "quant": 3, "modality": 10, "routine": 10, "function": 10, "vessel": 10,
    "sensitivity": 15, "count": 5, "spine": 10,
}  # fmt: skip
"""Score taken off when one name states a family's value and the other is silent."""

MISSING_VALUE_PENALTY: dict[tuple[str, str], float] = {
    ("contrast", "plain"): 3,  # an unqualified CT or MRI is a plain scan
    ("sedation", "plain"): 2,
}
"""Exceptions to :data:`MISSING_PENALTY` for values a silent name usually means anyway."""

FAMILY_LABELS: dict[str, str] = {
    "contrast": "平扫/增强", "side": "左/右侧", "view": "投照体位", "sedation": "无痛/普通",
    "route": "检查途径", "fasting": "空腹/餐后", "quant": "定量/定性", "modality": "检查方式",
    "routine": "常规项目", "function": "功能项目", "vessel": "动脉/静脉",
    "sensitivity": "超敏", "count": "项数", "spine": "脊柱节段",
}  # fmt: skip
"""How a reason names each family to the integration engineer (zh-CN)."""
