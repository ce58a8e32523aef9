"""Constants, helpers and governance/terminology builders for `medledger.samples.fhir`."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

BASE = "http://hospital.example.org/fhir"
SID = f"{BASE}/sid"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
LOCAL_ITEMS = f"{BASE}/CodeSystem/lab-items"
CST = timezone(timedelta(hours=8))

FAMILIES = ["张", "李", "王", "刘", "陈", "杨", "赵", "黄", "周", "吴", "欧阳"]
GIVENS = ["三", "四", "伟", "芳", "娜", "敏", "静", "磊", "洋", "秀英", "建国", "子涵"]
CITIES = [
    ("浙江省", "杭州市", "西湖区"),
    ("江苏省", "南京市", "鼓楼区"),
    ("四川省", "成都市", "武侯区"),
]

# (LOINC code, display, 中文名, UCUM unit, low, high, decimals)
LAB_TESTS = [
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "血红蛋白", "g/L", 115, 150, 0),
    (
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
        "白细胞计数",
        "10*9/L",
        3.5,
        9.5,
        2,
    ),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "葡萄糖", "mmol/L", 3.9, 6.1, 1),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "肌酐", "umol/L", 57, 111, 0),
]


def ref(resource: dict[str, Any]) -> dict[str, str]:
    return {"reference": f"{resource['resourceType']}/{resource['id']}"}


def cc(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        out["text"] = text
    return out


class GovernanceSamples:
    """Consent, Provenance and terminology builders; mixed into ``FhirSamples``."""

    rng: random.Random
    seed: int
    now: datetime

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{self.seed}-{self.rng.randrange(10_000, 99_999)}"

    def _when(self, minutes: int = 0) -> str:
        return (self.now + timedelta(minutes=minutes)).isoformat(timespec="seconds")

    def consent(self, patient: dict[str, Any], org: dict[str, Any]) -> dict[str, Any]:
        """Return a patient's consent to share results within the hospital group."""
        return {
            "resourceType": "Consent",
            "id": self._id("consent"),
            "status": "active",
            "scope": cc(
                "http://terminology.hl7.org/CodeSystem/consentscope",
                "patient-privacy",
                "Privacy Consent",
            ),
            "category": [cc(LOINC, "59284-0", "Patient Consent", "数据共享知情同意")],
            "patient": ref(patient),
            "dateTime": self._when(-120),
            "organization": [ref(org)],
            "policyRule": cc("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN", "opt-in"),
            "provision": {
                "type": "permit",
                "period": {"start": self.now.date().isoformat(), "end": "2031-12-31"},
                "actor": [
                    {
                        "role": cc(
                            "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "IRCP",
                            "information recipient",
                        ),
                        "reference": ref(org),
                    }
                ],
                "action": [
                    cc("http://terminology.hl7.org/CodeSystem/consentaction", "access", "Access")
                ],
            },
        }

    def provenance(self, targets: list[dict[str, Any]], org: dict[str, Any]) -> dict[str, Any]:
        """Return who recorded ``targets`` and from which source system."""
        return {
            "resourceType": "Provenance",
            "id": self._id("prov"),
            "target": [ref(t) for t in targets],
            "recorded": self.now.isoformat(timespec="milliseconds"),
            "activity": cc(
                "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "CREATE", "create"
            ),
            "agent": [
                {
                    "type": cc(
                        "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                        "author",
                        "Author",
                    ),
                    "who": ref(org),
                }
            ],
            "entity": [{"role": "source", "what": {"display": "LIS 实验室信息系统"}}],
        }

    def code_system(self) -> dict[str, Any]:
        """Return the group's local laboratory item code system."""
        return {
            "resourceType": "CodeSystem",
            "id": self._id("cs"),
            "url": LOCAL_ITEMS,
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:2.999.1.1"}],
            "version": "2026.11",
            "name": "LabItems",
            "title": "本院检验项目",
            "status": "active",
            "date": self.now.date().isoformat(),
            "content": "complete",
            "concept": [{"code": f"L{n:03d}", "display": t[2]} for n, t in enumerate(LAB_TESTS, 1)],
        }

    def value_set(self) -> dict[str, Any]:
        """Return a value set of the local items plus a LOINC code."""
        return {
            "resourceType": "ValueSet",
            "id": self._id("vs"),
            "url": f"{BASE}/ValueSet/cbc-items",
            "name": "CbcItems",
            "status": "active",
            "date": self.now.date().isoformat(),
            "compose": {
                "include": [
                    {
                        "system": LOCAL_ITEMS,
                        "concept": [{"code": "L001", "display": "血红蛋白"}, {"code": "L002"}],
                    },
                    {"system": LOINC, "concept": [{"code": "718-7"}]},
                ]
            },
        }

    def concept_map(self) -> dict[str, Any]:
        """Return the map from local items to LOINC."""
        return {
            "resourceType": "ConceptMap",
            "id": self._id("cm"),
            "url": f"{BASE}/ConceptMap/lab-items-to-loinc",
            "status": "draft",
            "date": self.now.date().isoformat(),
            "group": [
                {
                    "source": LOCAL_ITEMS,
                    "target": LOINC,
                    "element": [
                        {
                            "code": f"L{n:03d}",
                            "display": t[2],
                            "target": [
                                {"code": t[0], "display": t[1], "equivalence": "equivalent"}
                            ],
                        }
                        for n, t in enumerate(LAB_TESTS, 1)
                    ],
                }
            ],
        }
