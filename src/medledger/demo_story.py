"""The hub demo's story: a member hospital refers patients to the central hospital.

Pure data, no I/O. ``build_story(seed)`` returns the master data (both hospitals, their
doctors, both item dictionaries and the ConceptMap between them) and, per patient, two
transactions: the member's referral (Patient, Encounter, 申请单 ServiceRequests, 送检条码
Specimens, Consent) and the central hospital's 报告回传 (Observations, DiagnosticReports,
ImagingStudy, DocumentReference, Provenance, the orders marked completed). Resources come from
``medledger.samples.fhir.FhirSamples`` and are relinked here; ``demo_seed`` posts them.
Everything is fictional and seeded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from medledger.samples.fhir import FhirSamples
from medledger.samples.fhir_parts import BASE, LAB_TESTS, LOINC, SID, SNOMED, cc, ref

CENTRAL = ("hosp-central", "示例市第一人民医院", "central")
MEMBER = ("hosp-member-east", "示例区中医院", "member-east")
MEMBER_ITEMS = f"{BASE}/member-east/CodeSystem/items"
CENTRAL_ITEMS = f"{BASE}/central/CodeSystem/items"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0487 = "http://terminology.hl7.org/CodeSystem/v2-0487"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
# kind, member code, central code, 中文名, LOINC code and display, DiagnosticReport section
ITEMS = (
    ("CT", "JC0101", "300101", "胸部CT平扫", "24627-2", "Chest CT", "CT", "CT"),
    ("US", "JC0201", "310201", "腹部彩色超声", "24558-9", "US Abdomen", "RUS", "超声"),
    ("CBC", "JY0001", "250101", "血常规", "58410-2", "CBC panel", "HM", "血液学"),
    ("CHEM", "JY0002", "250301", "肾功能+血糖", "24323-8", "Metabolic panel", "CH", "生化"),
)
PANELS = {"CBC": LAB_TESTS[:2], "CHEM": LAB_TESTS[2:]}
FINDINGS = {
    "CT": ("双肺纹理增粗，右肺下叶见小结节影，约4mm。", "右肺下叶微小结节，建议12个月后复查。"),
    "US": ("肝脏形态大小正常，胆囊壁光滑，未见结石。", "肝胆未见明显异常。"),
}
CORRECTION = "【更正】右肺下叶结节约6mm（原报告误写为4mm），建议6个月后复查胸部CT。"
RECALL = "【报告召回】标本溶血，本报告作废，请重新采集标本送检。"


@dataclass
class Write:
    """One transaction entry: POST a new resource, or PUT one whose id is known."""

    resource: dict[str, Any]
    method: str = "POST"
    if_none_exist: str | None = None
    if_match: int | None = None


@dataclass
class Step:
    title: str
    writes: list[Write] = field(default_factory=list)


@dataclass
class Episode:
    patient: dict[str, Any]
    items: list[str]
    referral: Step
    results: Step
    orders: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # item kind → report


@dataclass
class Story:
    master: Step
    episodes: list[Episode]
    institutions: tuple[tuple[str, str, str], ...] = (CENTRAL, MEMBER)

    def report(self, kind: str, nth: int = 0) -> tuple[Episode, dict[str, Any]]:
        """Return the ``nth`` episode holding a ``kind`` report, and that report."""
        found = [(e, e.reports[kind]) for e in self.episodes if kind in e.reports]
        return found[nth]


def corrected(report: dict[str, Any]) -> dict[str, Any]:
    """Version 2 of an imaging report: the radiologist corrects the nodule size."""
    return {**report, "status": "amended", "conclusion": CORRECTION}


def recalled(report: dict[str, Any]) -> dict[str, Any]:
    """Version 2 of a lab report recalled by the laboratory (报告召回)."""
    return {**report, "status": "entered-in-error", "conclusion": RECALL}


class _Builder:
    def __init__(self, seed: int) -> None:
        self.s = FhirSamples(seed)
        self.ids: Iterator[int] = itertools.count(1)

    def new(self, resource: dict[str, Any], prefix: str) -> dict[str, Any]:
        """Give a generated resource a story-unique local id (the server assigns the real one)."""
        resource["id"] = f"{prefix}{next(self.ids)}"
        return resource

    def org(self, inst: tuple[str, str, str], code: str) -> dict[str, Any]:
        o = self.s.organization()
        o.update(id=inst[0], name=inst[1])
        o["identifier"] = [{"system": f"{SID}/org", "value": code}]
        return o

    def doctor(self, inst: tuple[str, str, str], n: int, role: str) -> dict[str, Any]:
        d = self.s.practitioner()
        d["id"] = f"pr-{inst[2]}-{n}"
        d["identifier"] = [{"system": f"{SID}/{inst[2]}/gh", "value": f"GH{n:04d}"}]
        d["qualification"] = [{"code": {"text": role}}]
        return d

    def dictionary(self, inst: tuple[str, str, str], url: str, col: int) -> dict[str, Any]:
        cs = self.s.code_system()
        cs.update(
            id=f"cs-{inst[2]}-items", url=url, name="ExamLabItems", title=f"{inst[1]}项目字典"
        )
        cs["identifier"] = [{"system": f"{SID}/{inst[2]}/dict", "value": "items"}]
        cs["concept"] = [{"code": i[col], "display": i[3]} for i in ITEMS]
        return cs

    def concept_map(self) -> dict[str, Any]:
        cm = self.s.concept_map()
        cm.update(id="cm-member-east-to-central", status="active", title="项目字典对照")
        cm["url"] = f"{BASE}/ConceptMap/member-east-to-central"
        element = [
            {"code": i[1], "display": i[3], "target": [{"code": i[2], "equivalence": "equal"}]}
            for i in ITEMS
        ]
        cm["group"] = [{"source": MEMBER_ITEMS, "target": CENTRAL_ITEMS, "element": element}]
        return cm


def build_story(seed: int = 20261122, patients: int = 12) -> Story:
    """Return the seeded referral story of ``patients`` patients."""
    b = _Builder(seed)
    central, member = b.org(CENTRAL, "H001"), b.org(MEMBER, "H107")
    member["partOf"] = ref(central)
    referrers = [b.doctor(MEMBER, n, "全科医生") for n in (1, 2)]
    radiologist = b.doctor(CENTRAL, 1, "影像科医生")
    lab = b.doctor(CENTRAL, 2, "检验科技师")
    master = [
        central,
        member,
        *referrers,
        radiologist,
        lab,
        b.dictionary(MEMBER, MEMBER_ITEMS, 1),
        b.dictionary(CENTRAL, CENTRAL_ITEMS, 2),
        b.concept_map(),
    ]
    story = Story(Step("主数据 master data", [Write(r, "PUT") for r in master]), [])
    kinds = [i[0] for i in ITEMS]
    for n in range(patients):
        picked = [kinds[n % 4], *([kinds[(n + 2) % 4]] if n % 3 == 0 else [])]
        s = FhirSamples(seed + 1000 * (n + 1))
        story.episodes.append(
            _episode(b, s, picked, central, member, referrers[n % 2], radiologist, lab)
        )
    return story


def _episode(
    b: _Builder,
    s: FhirSamples,
    picked: list[str],
    central: dict[str, Any],
    member: dict[str, Any],
    referrer: dict[str, Any],
    radiologist: dict[str, Any],
    lab: dict[str, Any],
) -> Episode:
    patient = b.new(s.patient(), "pat")
    mzh = {
        "use": "usual",
        "system": f"{SID}/member-east/mzh",
        "value": f"MZ{s.rng.randrange(10**7, 10**8)}",
    }
    patient["identifier"] = [mzh]
    patient["managingOrganization"] = ref(member)
    enc = b.new(s.encounter(patient, member), "enc")
    enc["identifier"][0]["system"] = f"{SID}/member-east/{enc['identifier'][0]['system'][-3:]}"
    consent = b.new(s.consent(patient, member), "consent")
    consent["provision"]["actor"][0]["reference"] = ref(central)
    query = f"identifier={mzh['system']}|{mzh['value']}"
    ep = Episode(patient, picked, Step("转诊 referral"), Step("报告回传 results"))
    ep.referral.writes = [Write(patient, if_none_exist=query), Write(enc)]
    for kind in picked:
        item = next(i for i in ITEMS if i[0] == kind)
        order = b.new(s.lab_order(patient, enc, referrer), "sr")
        order.update(status="active", performer=[ref(central)])
        order["identifier"] = [
            {"system": f"{SID}/member-east/sqdh", "value": f"SQ{s.rng.randrange(10**9, 10**10)}"}
        ]
        order["code"] = {
            "coding": [
                {"system": MEMBER_ITEMS, "code": item[1], "display": item[3]},
                {"system": LOINC, "code": item[4], "display": item[5]},
            ],
            "text": item[3],
        }
        ep.orders.append(order)
        ep.referral.writes.append(Write(order))
        if kind in PANELS:
            order["category"] = [cc(SNOMED, "108252007", "Laboratory procedure", "检验")]
            spec = b.new(s.specimen(patient, order), "spec")
            spec["identifier"][0]["system"] = f"{SID}/member-east/barcode"  # 送检条码
            spec["accessionIdentifier"]["system"] = f"{SID}/central/lis-accession"
            if kind == "CHEM":
                spec["type"] = cc(V2_0487, "SER", "Serum", "血清")
                spec["container"] = [{"description": "促凝管（黄头）"}]
            ep.referral.writes.append(Write(spec))
            obs = [b.new(s.observation(patient, order, spec, lab, t), "obs") for t in PANELS[kind]]
            for o in obs:
                o["status"] = "final"
            report = b.new(s.report(patient, order, spec, obs, central, "final"), "dr")
            report["conclusion"] = f"{item[3]}结果见各项。"
            source, parts = "LIS 实验室信息系统", obs
        else:
            order["category"] = [cc(SNOMED, "363679005", "Imaging", "检查")]
            study = b.new(_study(s, patient, order, kind), "img")
            report = b.new(s.report(patient, order, order, [], central, "final"), "dr")
            for k in ("specimen", "result"):
                report.pop(k)
            report["imagingStudy"] = [ref(study)]
            report["resultsInterpreter"] = [ref(radiologist)]
            report["conclusion"] = "".join(FINDINGS[kind])
            order["occurrenceDateTime"] = report["effectiveDateTime"] = study["started"]
            report["issued"] = s._when(100)  # read 30 minutes after the scan
            doc = b.new(s.document(patient, radiologist), "doc")
            doc["custodian"] = ref(central)
            doc["context"] = {"related": [ref(report)]}
            doc["content"][0]["attachment"]["title"] = f"{item[3]}报告"
            source, parts = "PACS/RIS 影像系统", [study, doc]
        report["code"] = {"coding": [{"system": LOINC, "code": item[4], "display": item[5]}]}
        report["code"]["text"] = item[3]
        report["category"] = [cc(V2_0074, item[6], item[6], item[7])]
        prov = b.new(s.provenance([report, *parts], central), "prov")
        prov["entity"][0]["what"]["display"] = source
        ep.reports[kind] = report
        ep.results.writes += [*(Write(p) for p in parts), Write(report), Write(prov)]
        ep.results.writes.append(Write({**order, "status": "completed"}, "PUT", if_match=1))
    ep.referral.writes.append(Write(consent))
    return ep


def _study(s: FhirSamples, patient: dict[str, Any], order: dict[str, Any], kind: str) -> Any:
    study = s.imaging_study(patient, order)
    if kind == "US":
        modality = {"system": DCM, "code": "US"}
        study.update(modality=[modality], description="腹部彩色超声")
        series = study["series"][0]
        series.update(modality=modality)
        series["bodySite"] = {"system": SNOMED, "code": "818983003", "display": "Abdomen"}
        for inst in series["instance"]:
            inst["sopClass"]["code"] = "urn:oid:1.2.840.10008.5.1.4.1.1.6.1"
    return study
