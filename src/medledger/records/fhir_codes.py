"""Codes of the FHIR R4 elements bound to a value set with strength ``required``.

The ``fhir.resources`` models type these elements as plain ``code`` strings and accept any
value, so a status of ``"bogus"`` would pass. A FHIR server must reject a code outside a required
binding; this table lets the validator do so. Keys are ``(model class name, JSON element name)``
as the R4B models name them (a backbone element's class joins its path: ``ConsentProvision``).

Only required bindings with a closed, short list are here. Bindings to external code systems
(MIME types, languages, currencies) are not enumerable and are left to the model's syntax check.
"""

from __future__ import annotations

__all__ = ["REQUIRED_CODES"]

_PUBLICATION_STATUS = "draft active retired unknown"
_GENDER = "male female other unknown"
_FILTER_OPERATOR = "= is-a descendent-of is-not-a regex in not-in generalizes exists"
_ENCOUNTER_STATUS = (
    "planned arrived triaged in-progress onleave finished cancelled entered-in-error unknown"
)
_QUANTITY_COMPARATOR = "< <= >= >"
_UNITS_OF_TIME = "s min h d wk mo a"
_EVENT_TIMING = (
    "MORN MORN.early MORN.late NOON AFT AFT.early AFT.late EVE EVE.early EVE.late NIGHT PHS "
    "HS WAKE C CM CD CV AC ACM ACD ACV PC PCM PCD PCV"
)

_TABLE: dict[tuple[str, str], str] = {
    # Data types.
    ("Narrative", "status"): "generated extensions additional empty",
    ("Identifier", "use"): "usual official temp secondary old",
    ("HumanName", "use"): "usual official temp nickname anonymous old maiden",
    ("ContactPoint", "system"): "phone fax email pager url sms other",
    ("ContactPoint", "use"): "home work temp old mobile",
    ("Address", "use"): "home work temp old billing",
    ("Address", "type"): "postal physical both",
    ("Quantity", "comparator"): _QUANTITY_COMPARATOR,
    ("Age", "comparator"): _QUANTITY_COMPARATOR,
    ("Count", "comparator"): _QUANTITY_COMPARATOR,
    ("Distance", "comparator"): _QUANTITY_COMPARATOR,
    ("Duration", "comparator"): _QUANTITY_COMPARATOR,
    ("TimingRepeat", "durationUnit"): _UNITS_OF_TIME,
    ("TimingRepeat", "periodUnit"): _UNITS_OF_TIME,
    ("TimingRepeat", "dayOfWeek"): "mon tue wed thu fri sat sun",
    ("TimingRepeat", "when"): _EVENT_TIMING,
    ("RelatedArtifact", "type"): (
        "documentation justification citation predecessor successor derived-from depends-on "
        "composed-of"
    ),
    ("Contributor", "type"): "author editor reviewer endorser",
    ("ParameterDefinition", "use"): "in out",
    ("DataRequirementSort", "direction"): "ascending descending",
    ("TriggerDefinition", "type"): (
        "named-event periodic data-changed data-added data-modified data-removed data-accessed "
        "data-access-ended"
    ),
    # Administrative resources.
    ("Patient", "gender"): _GENDER,
    ("PatientContact", "gender"): _GENDER,
    ("PatientLink", "type"): "replaced-by replaces refer seealso",
    ("Practitioner", "gender"): _GENDER,
    ("Encounter", "status"): _ENCOUNTER_STATUS,
    ("EncounterStatusHistory", "status"): _ENCOUNTER_STATUS,
    ("EncounterLocation", "status"): "planned active reserved completed",
    # Orders, specimens, results and reports.
    ("ServiceRequest", "status"): "draft active on-hold revoked completed entered-in-error unknown",
    ("ServiceRequest", "intent"): (
        "proposal plan directive order original-order reflex-order filler-order instance-order "
        "option"
    ),
    ("ServiceRequest", "priority"): "routine urgent asap stat",
    ("Specimen", "status"): "available unavailable unsatisfactory entered-in-error",
    ("Observation", "status"): (
        "registered preliminary final amended corrected cancelled entered-in-error unknown"
    ),
    ("DiagnosticReport", "status"): (
        "registered partial preliminary final amended corrected appended cancelled "
        "entered-in-error unknown"
    ),
    ("ImagingStudy", "status"): "registered available cancelled entered-in-error unknown",
    ("DocumentReference", "status"): "current superseded entered-in-error",
    ("DocumentReference", "docStatus"): "preliminary final amended entered-in-error",
    ("DocumentReferenceRelatesTo", "code"): "replaces transforms signs appends",
    ("Consent", "status"): "draft proposed active rejected inactive entered-in-error",
    ("ConsentProvision", "type"): "deny permit",
    ("ConsentProvisionData", "meaning"): "instance related dependents authoredby",
    ("ProvenanceEntity", "role"): "derivation revision quotation source removal",
    # Terminology resources.
    ("CodeSystem", "status"): _PUBLICATION_STATUS,
    ("CodeSystem", "content"): "not-present example fragment complete supplement",
    ("CodeSystem", "hierarchyMeaning"): "grouped-by is-a part-of classified-with",
    ("CodeSystemFilter", "operator"): _FILTER_OPERATOR,
    ("CodeSystemProperty", "type"): "code Coding string integer boolean dateTime decimal",
    ("ValueSet", "status"): _PUBLICATION_STATUS,
    ("ValueSetComposeIncludeFilter", "op"): _FILTER_OPERATOR,
    ("ConceptMap", "status"): _PUBLICATION_STATUS,
    ("ConceptMapGroupElementTarget", "equivalence"): (
        "relatedto equivalent equal wider subsumes narrower specializes inexact unmatched disjoint"
    ),
    ("ConceptMapGroupUnmapped", "mode"): "provided fixed other-map",
}

REQUIRED_CODES: dict[tuple[str, str], frozenset[str]] = {
    key: frozenset(codes.split()) for key, codes in _TABLE.items()
}
