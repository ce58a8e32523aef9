"""Seeded generator of realistic, entirely fictional FHIR R4 data of a Chinese hospital group.

Every name, number and URL is made up: hospital identifiers (门诊号 mzh, 住院号 zyh, 工号,
specimen barcodes) live under ``hospital.example.org``; no national ID numbers are generated.
``clinical_set(seed)`` returns one linked episode (patient, order, specimen, results, report,
imaging, document, consent, provenance, terminology) with one resource of each of the 15 types.
"""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from medledger.samples.fhir_parts import (
    BASE,
    CITIES,
    CST,
    FAMILIES,
    GIVENS,
    LAB_TESTS,
    LOINC,
    SID,
    SNOMED,
    UCUM,
    GovernanceSamples,
    cc,
    ref,
)


class FhirSamples(GovernanceSamples):
    """Build linked fictional resources from one seeded random generator."""

    def __init__(self, seed: int = 20261122) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        start = datetime(2026, 11, 1, 8, 0, tzinfo=CST)
        self.now = start + timedelta(minutes=self.rng.randrange(0, 30 * 24 * 60))

    def organization(self) -> dict[str, Any]:
        """Return a fictional hospital of the group."""
        return {
            "resourceType": "Organization",
            "id": self._id("org"),
            "identifier": [{"system": f"{SID}/org", "value": f"H{self.rng.randrange(100, 999)}"}],
            "active": True,
            "name": self.rng.choice(["示例市第一人民医院", "示例大学附属医院", "示例区中医院"]),
            "telecom": [{"system": "phone", "value": "0571-00000000", "use": "work"}],
        }

    def practitioner(self) -> dict[str, Any]:
        """Return a fictional doctor with a staff number (工号)."""
        family, given = self.rng.choice(FAMILIES), self.rng.choice(GIVENS)
        return {
            "resourceType": "Practitioner",
            "id": self._id("pr"),
            "identifier": [{"system": f"{SID}/gh", "value": f"GH{self.rng.randrange(1000, 9999)}"}],
            "active": True,
            "name": [
                {"use": "official", "text": family + given, "family": family, "given": [given]}
            ],
            "gender": self.rng.choice(["male", "female"]),
        }

    def patient(self) -> dict[str, Any]:
        """Return a fictional patient with outpatient (mzh) and inpatient (zyh) numbers."""
        family, given = self.rng.choice(FAMILIES), self.rng.choice(GIVENS)
        state, city, district = self.rng.choice(CITIES)
        born = datetime(1940, 1, 1) + timedelta(days=self.rng.randrange(0, 80 * 365))
        return {
            "resourceType": "Patient",
            "id": self._id("pat"),
            "identifier": [
                {
                    "use": "usual",
                    "system": f"{SID}/mzh",
                    "value": f"MZ{self.rng.randrange(10**7, 10**8)}",
                },
                {"system": f"{SID}/zyh", "value": f"ZY{self.rng.randrange(10**6, 10**7)}"},
            ],
            "active": True,
            "name": [
                {"use": "official", "text": family + given, "family": family, "given": [given]}
            ],
            "telecom": [{"system": "phone", "value": "13800138000", "use": "mobile"}],
            "gender": self.rng.choice(["male", "female"]),
            "birthDate": born.date().isoformat(),
            "address": [
                {
                    "use": "home",
                    "state": state,
                    "city": city,
                    "district": district,
                    "country": "CN",
                    "line": [f"示例路 {self.rng.randrange(1, 300)} 号"],
                }
            ],
        }

    def encounter(self, patient: dict[str, Any], org: dict[str, Any]) -> dict[str, Any]:
        """Return an outpatient (门诊) or inpatient (住院) visit."""
        inpatient = self.rng.random() < 0.4
        number = (
            f"ZY{self.rng.randrange(10**6, 10**7)}"
            if inpatient
            else f"MZ{self.rng.randrange(10**7, 10**8)}"
        )
        return {
            "resourceType": "Encounter",
            "id": self._id("enc"),
            "identifier": [{"system": f"{SID}/{'zyh' if inpatient else 'mzh'}", "value": number}],
            "status": "in-progress" if inpatient else "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "IMP" if inpatient else "AMB",
                "display": "inpatient encounter" if inpatient else "ambulatory",
            },
            "subject": ref(patient),
            "period": {"start": self._when(-60)}
            if inpatient
            else {"start": self._when(-60), "end": self._when(-20)},
            "serviceProvider": ref(org),
        }

    def lab_order(
        self, patient: dict[str, Any], enc: dict[str, Any], doctor: dict[str, Any]
    ) -> dict[str, Any]:
        """Return a 检验 (laboratory) ServiceRequest for a blood count."""
        return {
            "resourceType": "ServiceRequest",
            "id": self._id("sr"),
            "identifier": [
                {"system": f"{SID}/order", "value": f"JY{self.rng.randrange(10**9, 10**10)}"}
            ],
            "status": "completed",
            "intent": "order",
            "priority": self.rng.choice(["routine", "stat"]),
            "category": [cc(SNOMED, "108252007", "Laboratory procedure", "检验")],
            "code": cc(LOINC, "58410-2", "CBC panel - Blood by Automated count", "血常规"),
            "subject": ref(patient),
            "encounter": ref(enc),
            "occurrenceDateTime": self._when(-30),
            "authoredOn": self._when(-40),
            "requester": ref(doctor),
        }

    def imaging_order(self, patient: dict[str, Any], doctor: dict[str, Any]) -> dict[str, Any]:
        """Return a 检查 (imaging) ServiceRequest with a local exam code."""
        return {
            "resourceType": "ServiceRequest",
            "id": self._id("sr"),
            "status": "active",
            "intent": "order",
            "category": [cc(SNOMED, "363679005", "Imaging", "检查")],
            "code": cc(f"{BASE}/CodeSystem/exam-items", "CT001", "胸部CT平扫"),
            "subject": ref(patient),
            "occurrencePeriod": {"start": self._when(60), "end": self._when(120)},
            "requester": ref(doctor),
        }

    def specimen(self, patient: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
        """Return a blood specimen with a tube barcode."""
        barcode = f"{self.now:%y%m%d}{self.rng.randrange(10**6, 10**7)}"
        return {
            "resourceType": "Specimen",
            "id": self._id("spec"),
            "identifier": [{"system": f"{SID}/barcode", "value": barcode}],
            "accessionIdentifier": {"system": f"{SID}/lis-accession", "value": f"A{barcode}"},
            "status": "available",
            "type": cc(
                "http://terminology.hl7.org/CodeSystem/v2-0487", "BLD", "Whole blood", "全血"
            ),
            "subject": ref(patient),
            "request": [ref(order)],
            "receivedTime": self._when(-10),
            "collection": {
                "collectedDateTime": self._when(-25),
                "quantity": {"value": 2, "unit": "mL", "system": UCUM, "code": "mL"},
            },
            "container": [{"description": "EDTA-K2 紫头管"}],
        }

    def observation(
        self,
        patient: dict[str, Any],
        order: dict[str, Any],
        spec: dict[str, Any],
        doctor: dict[str, Any],
        test: tuple[Any, ...],
    ) -> dict[str, Any]:
        """Return a laboratory result with a UCUM quantity and a reference range."""
        code, display, name, unit, low, high, decimals = test
        value = round(self.rng.uniform(low * 0.7, high * 1.3), decimals)
        flag = "L" if value < low else "H" if value > high else "N"

        def qty(v: float) -> dict[str, Any]:
            return {"value": v, "unit": unit, "system": UCUM, "code": unit}

        return {
            "resourceType": "Observation",
            "id": self._id("obs"),
            "identifier": [
                {"system": f"{SID}/lis-result", "value": f"R{self.rng.randrange(10**8, 10**9)}"}
            ],
            "basedOn": [ref(order)],
            "status": self.rng.choice(["final", "final", "amended", "preliminary"]),
            "category": [
                cc(
                    "http://terminology.hl7.org/CodeSystem/observation-category",
                    "laboratory",
                    "Laboratory",
                )
            ],
            "code": cc(LOINC, code, display, name),
            "subject": ref(patient),
            "effectiveDateTime": self._when(-25),
            "issued": (self.now.astimezone(UTC))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "performer": [ref(doctor)],
            "valueQuantity": qty(value),
            "interpretation": [
                cc("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", flag, flag)
            ],
            "specimen": ref(spec),
            "referenceRange": [{"low": qty(low), "high": qty(high)}],
        }

    def blood_pressure(self, patient: dict[str, Any]) -> dict[str, Any]:
        """Return a vital-signs Observation with systolic/diastolic components in mm[Hg]."""

        def comp(code: str, display: str, value: int) -> dict[str, Any]:
            return {
                "code": cc(LOINC, code, display),
                "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
            }

        return {
            "resourceType": "Observation",
            "id": self._id("bp"),
            "status": "final",
            "category": [
                cc(
                    "http://terminology.hl7.org/CodeSystem/observation-category",
                    "vital-signs",
                    "Vital Signs",
                )
            ],
            "code": cc(LOINC, "85354-9", "Blood pressure panel with all children optional", "血压"),
            "subject": ref(patient),
            "effectiveDateTime": self._when(-90),
            "component": [
                comp("8480-6", "Systolic blood pressure", self.rng.randrange(100, 160)),
                comp("8462-4", "Diastolic blood pressure", self.rng.randrange(60, 100)),
            ],
        }

    def report(
        self,
        patient: dict[str, Any],
        order: dict[str, Any],
        spec: dict[str, Any],
        results: list[dict[str, Any]],
        org: dict[str, Any],
        status: str,
    ) -> dict[str, Any]:
        """Return a 血常规 DiagnosticReport (final, amended or entered-in-error)."""
        return {
            "resourceType": "DiagnosticReport",
            "id": self._id("dr"),
            "identifier": [
                {"system": f"{SID}/lis-report", "value": f"BG{self.rng.randrange(10**8, 10**9)}"}
            ],
            "basedOn": [ref(order)],
            "status": status,
            "category": [
                cc("http://terminology.hl7.org/CodeSystem/v2-0074", "HM", "Hematology", "血液学")
            ],
            "code": cc(LOINC, "58410-2", "CBC panel - Blood by Automated count", "血常规"),
            "subject": ref(patient),
            "effectiveDateTime": self._when(-25),
            "issued": self.now.isoformat(timespec="seconds"),
            "performer": [ref(org)],
            "specimen": [ref(spec)],
            "result": [ref(r) for r in results],
            "conclusion": "作废：标本溶血"
            if status == "entered-in-error"
            else "血常规各项指标见结果。",
        }

    def imaging_study(self, patient: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
        """Return a CT study pointing to a WADO-RS endpoint (contained Endpoint)."""
        study_uid = f"1.2.826.0.1.3680043.10.{self.seed}.{self.rng.randrange(10**6, 10**7)}"
        return {
            "resourceType": "ImagingStudy",
            "id": self._id("img"),
            "contained": [
                {
                    "resourceType": "Endpoint",
                    "id": "wado",
                    "status": "active",
                    "connectionType": {
                        "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                        "code": "dicom-wado-rs",
                    },
                    "payloadType": [{"text": "DICOM"}],
                    "address": "https://pacs.hospital.example.org/dicom-web",
                }
            ],
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}],
            "status": "available",
            "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
            "subject": ref(patient),
            "started": self._when(70),
            "basedOn": [ref(order)],
            "endpoint": [{"reference": "#wado"}],
            "numberOfSeries": 1,
            "numberOfInstances": 2,
            "description": "胸部CT平扫",
            "series": [
                {
                    "uid": f"{study_uid}.1",
                    "number": 1,
                    "modality": {
                        "system": "http://dicom.nema.org/resources/ontology/DCM",
                        "code": "CT",
                    },
                    "bodySite": {
                        "system": SNOMED,
                        "code": "51185008",
                        "display": "Thoracic structure",
                    },
                    "instance": [
                        {
                            "uid": f"{study_uid}.1.{n}",
                            "number": n,
                            "sopClass": {
                                "system": "urn:ietf:rfc:3986",
                                "code": "urn:oid:1.2.840.10008.5.1.4.1.1.2",
                            },
                        }
                        for n in (1, 2)
                    ],
                }
            ],
        }

    def document(self, patient: dict[str, Any], doctor: dict[str, Any]) -> dict[str, Any]:
        """Return a DocumentReference to a PDF report with its size and SHA-1 hash."""
        content = f"示例检查报告 {self.seed}".encode()
        return {
            "resourceType": "DocumentReference",
            "id": self._id("doc"),
            "masterIdentifier": {
                "system": f"{SID}/doc",
                "value": f"DOC{self.rng.randrange(10**8, 10**9)}",
            },
            "status": "current",
            "docStatus": "final",
            "type": cc(LOINC, "18748-4", "Diagnostic imaging study", "影像检查报告"),
            "category": [cc(f"{BASE}/CodeSystem/doc-class", "exam-report", "检查报告")],
            "subject": ref(patient),
            "date": self.now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "author": [ref(doctor)],
            "content": [
                {
                    "attachment": {
                        "contentType": "application/pdf",
                        "language": "zh-CN",
                        "url": f"https://docs.hospital.example.org/reports/{self.seed}.pdf",
                        "size": len(content),
                        "hash": base64.b64encode(
                            hashlib.sha1(content, usedforsecurity=False).digest()
                        ).decode(),
                        "title": "胸部CT报告",
                    }
                }
            ],
        }


def clinical_set(seed: int = 20261122) -> list[dict[str, Any]]:
    """Return one linked episode holding a resource of each of the 15 supported types."""
    s = FhirSamples(seed)
    org, doctor, patient = s.organization(), s.practitioner(), s.patient()
    enc = s.encounter(patient, org)
    lab, ct = s.lab_order(patient, enc, doctor), s.imaging_order(patient, doctor)
    spec = s.specimen(patient, lab)
    results = [s.observation(patient, lab, spec, doctor, t) for t in LAB_TESTS]
    status = s.rng.choice(["final", "amended", "entered-in-error"])
    report = s.report(patient, lab, spec, results, org, status)
    return [
        patient,
        doctor,
        org,
        enc,
        lab,
        ct,
        spec,
        *results,
        s.blood_pressure(patient),
        report,
        s.imaging_study(patient, ct),
        s.document(patient, doctor),
        s.consent(patient, org),
        s.provenance([report, *results], org),
        s.code_system(),
        s.value_set(),
        s.concept_map(),
    ]
