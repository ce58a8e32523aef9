"""Write the HL7 v2.5 sample messages of this folder (the test suite checks they are current).

.venv/bin/python tests/data/hl7/make_samples.py

The samples are fictitious but shaped like real traffic in a Chinese hospital group: the
member hospital 示例区中医院 (HIS) orders exams and tests from the central hospital
示例市第一人民医院 (RIS/PACS/LIS), which sends results and reports back. Each sample is written
in UTF-8 (MSH-18 ``UNICODE UTF-8``); four have GB18030/GBK twins: three declare their charset
in MSH-18 in different spellings and one is GBK with no MSH-18 at all, as many HIS send.
Segments end with ``\\r``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

REPORT_IMAGE_SHA256 = "5ed3c3d86c8da77b93b056b7969a0fe4ffd671df7cc2d4a1ee841ffd99402c39"
UTF8 = "UNICODE UTF-8"


def msh(fields: dict[int, str]) -> str:
    """Return an MSH segment; ``fields`` maps MSH-3 and later to their raw text."""
    last = max(fields)
    return "MSH|^~\\&|" + "|".join(fields.get(n, "") for n in range(3, last + 1))


def seg(name: str, fields: dict[int, str]) -> str:
    """Return a segment; ``fields`` maps field numbers to their raw (escaped) text."""
    last = max(fields)
    return "|".join([name, *(fields.get(n, "") for n in range(1, last + 1))])


def _head(
    sending: tuple[str, str], receiving: tuple[str, str], ts: str, mtype: str, cid: str
) -> str:
    return msh(
        {3: sending[0], 4: sending[1], 5: receiving[0], 6: receiving[1], 7: ts, 9: mtype,
         10: cid, 11: "P", 12: "2.5", 15: "AL", 16: "NE", 17: "CHN", 18: UTF8}
    )  # fmt: skip


HIS = ("HIS", "示例区中医院")
CENTRAL = "示例市第一人民医院"
LIU = seg("PID", {1: "1", 3: "MZ20240005^^^^PI", 5: "刘洋", 7: "19920808", 8: "M"})
SUN = "1001&孙&丽"


def _nm(
    set_id: str,
    code: str,
    value: str,
    unit: str,
    ref: str,
    flag: str,
    status: str,
    observed: str | None = None,
) -> str:
    """Return a numeric (NM) OBX: value, unit, reference range, flag, status, OBX-14 if given."""
    fields = {1: set_id, 2: "NM", 3: code, 5: value, 6: unit, 7: ref, 8: flag, 11: status}
    if observed is not None:
        fields[14] = observed
    return seg("OBX", fields)


def _renal(status: str) -> list[str]:
    """Return the 肾功能 OBX segments (肌酐, 尿素, 尿酸), each with OBX-11 ``status``."""
    return [
        _nm("1", "CREA^肌酐^L", "128", "umol/L", "57-111", "H", status),
        _nm("2", "UREA^尿素^L", "7.9", "mmol/L", "3.1-8.0", "N", status),
        _nm("3", "UA^尿酸^L", "180", "umol/L", "208-428", "L", status),
    ]


def _lab_report(
    set_id: str,
    placer: str,
    filler: str,
    code: str,
    *,
    times: tuple[str, str],
    barcode: str,
    section: str,
    status: str,
) -> list[str]:
    """Return the ORC and OBR of one LIS report; ``times`` are OBR-7 (collected), OBR-22."""
    return [
        seg("ORC", {1: "RE", 2: placer, 3: filler, 21: "示例区中医院"}),
        seg("OBR", {1: set_id, 2: placer, 3: filler, 4: code, 7: times[0], 18: barcode,
                    22: times[1], 24: section, 25: status, 32: SUN}),
    ]  # fmt: skip


SAMPLES: dict[str, list[str]] = {
    # 放射: chest CT ordered by the member hospital's outpatient clinic.
    "orm_ct_chest": [
        _head(HIS, ("RIS", CENTRAL), "20240501083015", "ORM^O01^ORM_O01", "HIS20240501000123"),
        seg("PID", {1: "1", 3: "MZ20240001^^^示例区中医院^PI~110101197803150017^^^^NI",
                    5: "张伟", 7: "19780315", 8: "1"}),
        seg("PV1", {1: "1", 2: "O", 3: "呼吸内科门诊", 7: "D001^李明", 19: "MZ20240501001"}),
        seg("ORC", {1: "NW", 2: "SQ202405010001", 7: "^^^^^R", 9: "20240501082800",
                    12: "D001^李^明", 21: "示例区中医院"}),
        seg("OBR", {1: "1", 2: "SQ202405010001", 4: "CT0101^胸部CT平扫^L",
                    13: "咳嗽两周，发热3天\\.br\\临床诊断：社区获得性肺炎", 15: "^^^&胸部",
                    24: "RAD"}),
    ],
    # 超声: urgent abdominal ultrasound; times with an offset; sex as GB/T 2261.1 code 2.
    "orm_us_abdomen": [
        _head(HIS, ("RIS", CENTRAL), "20240501090510+0800", "ORM^O01^ORM_O01",
              "HIS20240501000124"),
        seg("PID", {1: "1", 3: "MZ20240002^^^^PI", 5: "王芳", 7: "19850620", 8: "2"}),
        seg("PV1", {1: "1", 2: "O", 3: "消化内科门诊", 19: "MZ20240501002"}),
        seg("ORC", {1: "NW", 2: "SQ202405010002", 7: "^^^^^U", 9: "20240501090500+0800",
                    12: "D002^陈静", 21: "示例区中医院"}),
        seg("OBR", {1: "1", 2: "SQ202405010002", 4: "US0201^腹部彩超（肝胆胰脾）^L",
                    13: "右上腹痛待查", 15: "^^^&腹部", 24: "US"}),
    ],
    # 内镜: gastroscopy; no ORC-21, so the sender is MSH-4; sex written 男.
    "orm_gastroscopy": [
        _head(HIS, ("ENDO", CENTRAL), "20240501093000", "ORM^O01^ORM_O01", "HIS20240501000125"),
        seg("PID", {1: "1", 3: "MZ20240003^^^^PI", 5: "赵建国", 7: "19600101", 8: "男"}),
        seg("ORC", {1: "NW", 2: "SQ202405010003", 7: "^^^^^A", 9: "20240501092800",
                    12: "D003^吴^刚"}),
        seg("OBR", {1: "1", 2: "SQ202405010003", 4: "ES0301^胃镜检查（无痛）^L",
                    13: "上腹部不适三月，排除胃溃疡", 24: "ES"}),
    ],
    # 病理: biopsy; placer number only in ORC-2, specimen and site in OBR-15, barcode OBR-18.
    "orm_pathology": [
        _head(HIS, ("PIS", CENTRAL), "20240501102000", "ORM^O01^ORM_O01", "HIS20240501000126"),
        seg("PID", {1: "1", 3: "ZY20240088^^^^PI", 5: "孙秀英", 7: "19580312", 8: "F"}),
        seg("PV1", {1: "1", 2: "I", 3: "消化内科病区", 19: "ZY20240088-1"}),
        seg("ORC", {1: "NW", 2: "SQ202405010004", 7: "^^^^^R", 9: "20240501101800",
                    12: "D004^郑^华", 21: "示例区中医院"}),
        seg("OBR", {1: "1", 4: "PA0401^活检组织病理检查^L", 7: "20240501101500",
                    13: "胃镜下取材2块", 15: "TISS&组织&HL70070^^^&胃窦",
                    18: "BL2024050100012", 24: "PAT"}),
    ],
    # 检验: OML^O21 with two orders (血常规 + 肾功能), each with its specimen (SPM).
    "oml_lab": [
        _head(HIS, ("LIS", CENTRAL), "20240501080000", "OML^O21^OML_O21", "HIS20240501000127"),
        LIU,
        seg("PV1", {1: "1", 2: "O", 3: "发热门诊", 19: "MZ20240501005"}),
        seg("ORC", {1: "NW", 2: "SQ202405010005", 7: "^^^^^S", 9: "20240501074500",
                    12: "D005^周^敏", 21: "示例区中医院"}),
        seg("OBR", {1: "1", 2: "SQ202405010005", 4: "XCG^血常规^L", 13: "发热待查", 24: "HM"}),
        seg("SPM", {1: "1", 2: "BC2024050100051", 4: "BLD^全血^HL70070",
                    17: "20240501075500"}),
        seg("ORC", {1: "NW", 2: "SQ202405010006", 7: "^^^^^R", 9: "20240501074500",
                    12: "D005^周^敏", 21: "示例区中医院"}),
        seg("OBR", {1: "2", 2: "SQ202405010006", 4: "SGN^肾功能^L", 13: "发热待查", 24: "CH"}),
        seg("SPM", {1: "1", 2: "BC2024050100052", 4: "SER^血清^HL70070",
                    17: "20240501075600"}),
    ],
    # 检验结果: two reports for one patient, NM values with H/L flags, one ST value.
    "oru_lab": [
        _head(("LIS", CENTRAL), HIS, "20240501113000", "ORU^R01^ORU_R01", "LIS20240501003344"),
        LIU,
        *_lab_report("1", "SQ202405010005", "F2024050100051", "XCG^血常规^L",
                     times=("20240501075500", "20240501112500"), barcode="BC2024050100051",
                     section="HM", status="F"),
        _nm("1", "WBC^白细胞计数^L", "11.2", "10*9/L", "3.5-9.5", "H", "F", "20240501111000"),
        _nm("2", "HGB^血红蛋白^L", "135", "g/L", "130-175", "N", "F", "20240501111000"),
        _nm("3", "PLT^血小板计数^L", "98", "10*9/L", "125-350", "L", "F", "20240501111000"),
        *_lab_report("2", "SQ202405010006", "F2024050100052", "SGN^肾功能^L",
                     times=("20240501075600", "20240501112800"), barcode="BC2024050100052",
                     section="CH", status="F"),
        *_renal("F"),
        seg("OBX", {1: "4", 2: "ST", 3: "GFR^估算肾小球滤过率^L", 5: ">90",
                    6: "mL/min/1.73m2", 11: "F"}),
    ],
    # 放射报告: findings and conclusion as TX, a WADO-RS study, a report image with its hash
    # (NTE content-hash), and a viewer link whose '&' the PACS did not escape.
    "oru_ct_report": [
        _head(("PACS", CENTRAL), HIS, "20240501150000", "ORU^R01^ORU_R01", "PACS20240501000777"),
        seg("PID", {1: "1", 3: "MZ20240001^^^^PI~110101197803150017^^^^NI", 5: "张伟",
                    7: "19780315", 8: "1"}),
        seg("ORC", {1: "RE", 2: "SQ202405010001", 3: "CT20240501008", 21: "示例区中医院"}),
        seg("OBR", {1: "1", 2: "SQ202405010001", 3: "CT20240501008", 4: "CT0101^胸部CT平扫^L",
                    7: "20240501100000", 22: "20240501145500", 24: "CT", 25: "F",
                    32: "2001&赵&强"}),
        seg("OBX", {1: "1", 2: "TX", 3: "检查所见^检查所见^L",
                    5: "双肺纹理增多、紊乱。右肺下叶见斑片状高密度影，边界模糊。"
                       "~纵隔内未见肿大淋巴结。", 11: "F"}),
        seg("OBX", {1: "2", 2: "TX", 3: "诊断意见^诊断意见^L",
                    5: "右肺下叶炎症，建议抗炎治疗后复查。", 11: "F"}),
        seg("OBX", {1: "3", 2: "RP", 3: "IMG^影像^L",
                    5: "https://pacs.hosp-central.example/dicomweb/studies/"
                       "1.2.840.113619.2.55.3.604688119.971.1714528800.1^PACS^AP", 11: "F"}),
        seg("OBX", {1: "4", 2: "RP", 3: "RPTIMG^报告图像^L",
                    5: "https://pacs.hosp-central.example/reports/CT20240501008.jpg^PACS^IM^JPEG",
                    11: "F"}),
        seg("NTE", {1: "1", 3: "sha256:" + REPORT_IMAGE_SHA256, 4: "content-hash"}),
        seg("OBX", {1: "5", 2: "RP", 3: "VIEW^影像浏览^L",
                    5: "https://viewer.hosp-central.example/view?study=CT20240501008&token=t1"
                       "^PACS^TEXT^HTML", 11: "F"}),
    ],
    # 更正: a corrected potassium result (OBR-25 C, OBX-11 C) with the reason in an NTE.
    "oru_correction": [
        _head(("LIS", CENTRAL), HIS, "20240502093500", "ORU^R01^ORU_R01", "LIS20240502000101"),
        LIU,
        *_lab_report("1", "SQ202405010007", "F2024050100071", "DJZ^电解质^L",
                     times=("20240501075500", "20240502093000"), barcode="BC2024050100053",
                     section="CH", status="C"),
        seg("NTE", {1: "1", 3: "血钾结果复核后更正，原结果因标本放置过久偏高"}),
        _nm("1", "K^钾^L", "4.1", "mmol/L", "3.5-5.3", "N", "C"),
        _nm("2", "NA^钠^L", "140", "mmol/L", "137-147", "N", "F"),
        _nm("3", "CL^氯^L", "101", "mmol/L", "99-110", "N", "F"),
    ],
    # 召回: every OBX posted as wrong (W), reason 标本溶血.
    "oru_recall": [
        _head(("LIS", CENTRAL), HIS, "20240502101500", "ORU^R01^ORU_R01", "LIS20240502000102"),
        LIU,
        *_lab_report("1", "SQ202405010006", "F2024050100052", "SGN^肾功能^L",
                     times=("20240501075600", "20240502101000"), barcode="BC2024050100052",
                     section="CH", status="C"),
        seg("NTE", {1: "1", 3: "标本溶血，报告召回"}),
        *_renal("W"),
    ],
}  # fmt: skip

# name of the twin → (UTF-8 sample, MSH-18 written or None to leave it out, Python codec)
TWINS: dict[str, tuple[str, str | None, str]] = {
    "orm_ct_chest_gb18030": ("orm_ct_chest", "GB18030", "gb18030"),
    "oml_lab_gbk": ("oml_lab", "GBK", "gbk"),
    "oru_lab_gb18030": ("oru_lab", "CHINESE GB18030", "gb18030"),
    "oru_ct_report_gbk_undeclared": ("oru_ct_report", None, "gbk"),
}


def sample_bytes() -> dict[str, bytes]:
    """Return every sample file's name (without .hl7) and bytes."""
    out = {name: ("\r".join(segs) + "\r").encode("utf-8") for name, segs in SAMPLES.items()}
    for twin, (base, label, codec) in TWINS.items():
        segs = list(SAMPLES[base])
        head = segs[0].removesuffix(f"|{UTF8}")
        segs[0] = head if label is None else f"{head}|{label}"
        out[twin] = ("\r".join(segs) + "\r").encode(codec)
    return out


def main() -> None:
    """Write the sample files next to this script."""
    for name, data in sample_bytes().items():
        (HERE / f"{name}.hl7").write_bytes(data)


if __name__ == "__main__":
    main()
