"""The group sharing policy: which records of one institution the others may use, and how.

A policy is a list of rules. Each rule names resource types, optionally categories (codes of
the resource's ``category``; empty means any), the party roles it shares with (see
``records.parties``: ``requester``, ``performer``, ``custodian``, ``author``; ``*`` means every
institution of the group) and the actions it allows (``read``, ``search``, ``write``). A
record owned by institution B is shared with a caller of institution A under a rule when the
record is of one of the rule's types and categories and names A in one of its roles.

The policy lives in ``sharing.yaml`` in the node's data directory (docs/security.md shows
the format); without that file the default below applies. A rule never lets a caller do
what its own roles do not allow on its own institution's records: sharing extends *where* a
permission applies, never *what* it allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medledger.access.model import Action
from medledger.errors import InputError
from medledger.records.fhir_model import SUPPORTED_TYPES
from medledger.records.parties import CONSENT_ACTOR, PARTY_ROLES
from medledger.records.visibility import ANY_PARTY, Shared

__all__ = ["DEFAULT_POLICY", "POLICY_FILE", "SharingPolicy", "SharingRule", "load_policy"]

POLICY_FILE = "sharing.yaml"
_SHAREABLE_ACTIONS = frozenset({Action.READ, Action.SEARCH, Action.WRITE})
_ROLES = frozenset(PARTY_ROLES - {CONSENT_ACTOR}) | {ANY_PARTY}
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_CODE = re.compile(r"^[^\s|]{1,64}$")
_RULE_KEYS = frozenset({"name", "resources", "categories", "parties", "actions"})


@dataclass(frozen=True, slots=True)
class SharingRule:
    """One rule: ``resources`` × ``categories`` shared with ``parties`` for ``actions``."""

    name: str
    resources: frozenset[str]
    parties: frozenset[str]
    actions: frozenset[Action]
    categories: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "resources": sorted(self.resources),
            "categories": sorted(self.categories),
            "parties": sorted(self.parties),
            "actions": sorted(a.value for a in self.actions),
        }


@dataclass(frozen=True, slots=True)
class SharingPolicy:
    """The rules in force, and where they came from (a file path or ``default``)."""

    rules: tuple[SharingRule, ...]
    source: str = "default"

    def shared(self, action: Action, rtype: str) -> tuple[Shared, ...]:
        """The rules that share ``rtype`` for ``action``, as the records layer applies them."""
        return tuple(
            Shared(rule.parties, rule.categories, rule.name)
            for rule in self.rules
            if rtype in rule.resources and action in rule.actions
        )

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "rules": [r.to_json() for r in self.rules]}


def _strings(
    value: Any, field: str, allowed: Iterable[str] | None, pattern: re.Pattern[str] | None
) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{field} must be a list of strings", field=field, value=value)
    allowed_set = None if allowed is None else frozenset(allowed)
    for v in value:
        if allowed_set is not None and v not in allowed_set:
            raise InputError(
                f"{field} holds {v!r}",
                field=field,
                value=v,
                expected="one of " + ", ".join(sorted(allowed_set)),
            )
        if pattern is not None and not pattern.fullmatch(v):
            raise InputError(f"{field} holds {v!r}", field=field, value=v, expected="a code")
    return frozenset(value)


def parse_rule(obj: Any, at: str) -> SharingRule:
    """Check one rule (``at`` names it in errors, e.g. ``rules[2]``)."""
    if not isinstance(obj, dict):
        raise InputError(f"{at} must be a mapping", field=at, value=obj)
    extra = sorted(set(obj) - _RULE_KEYS)
    if extra:
        raise InputError(
            f"{at} has unknown key {extra[0]!r}",
            field=f"{at}.{extra[0]}",
            expected=", ".join(sorted(_RULE_KEYS)),
        )
    name = obj.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(
            f"{at}.name is missing or malformed",
            field=f"{at}.name",
            value=name,
            expected="lowercase letters, digits and '-', e.g. referral-results",
        )
    resources = _strings(obj.get("resources"), f"{at}.resources", SUPPORTED_TYPES, None)
    parties = _strings(obj.get("parties"), f"{at}.parties", _ROLES, None)
    actions = _strings(
        obj.get("actions"), f"{at}.actions", (a.value for a in _SHAREABLE_ACTIONS), None
    )
    categories = _strings(obj.get("categories", []), f"{at}.categories", None, _CODE)
    for what, value in (("resources", resources), ("parties", parties), ("actions", actions)):
        if not value:
            raise InputError(f"{at}.{what} is empty", field=f"{at}.{what}", expected="one or more")
    return SharingRule(name, resources, parties, frozenset(map(Action, actions)), categories)


def parse_policy(obj: Any, source: str) -> SharingPolicy:
    """Check a whole policy document (``{"version": 1, "rules": [...]}``)."""
    if not isinstance(obj, dict) or obj.get("version") != 1 or set(obj) - {"version", "rules"}:
        raise InputError(
            f"{source}: a sharing policy is a mapping with version: 1 and rules",
            field="policy",
            expected="version: 1, rules: [...]",
        )
    raw = obj.get("rules")
    if not isinstance(raw, list):
        raise InputError(f"{source}: rules must be a list", field="rules", value=raw)
    rules = tuple(parse_rule(r, f"rules[{i}]") for i, r in enumerate(raw))
    names = [r.name for r in rules]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"{source}: rule name {dup[0]!r} is used twice", field="rules.name")
    return SharingPolicy(rules, source)


DEFAULT_POLICY = parse_policy(
    {
        "version": 1,
        "rules": [
            {
                # Referrals: the member hospital's order, the specimen, and the central
                # hospital's results and images are seen by both ends of the referral.
                "name": "referral-orders-and-results",
                "resources": [
                    "ServiceRequest",
                    "Specimen",
                    "Observation",
                    "DiagnosticReport",
                    "ImagingStudy",
                    "DocumentReference",
                ],
                "parties": ["requester", "performer"],
                "actions": ["read", "search"],
            },
            {
                # The performing institution updates the order it performs (accepted,
                # completed); the order stays the requesting institution's record.
                "name": "referral-order-status",
                "resources": ["ServiceRequest"],
                "parties": ["performer"],
                "actions": ["write"],
            },
            {
                # Directories and item dictionaries are the group's common reference data.
                "name": "group-directories-and-dictionaries",
                "resources": [
                    "Organization",
                    "Practitioner",
                    "CodeSystem",
                    "ValueSet",
                    "ConceptMap",
                ],
                "parties": ["*"],
                "actions": ["read", "search"],
            },
        ],
    },
    "default",
)


def load_policy(data_dir: Path) -> SharingPolicy:
    """The policy of a node: ``<data>/sharing.yaml`` if present, else ``DEFAULT_POLICY``."""
    path = Path(data_dir) / POLICY_FILE
    if not path.exists():
        return DEFAULT_POLICY
    import yaml

    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(
            f"cannot read the sharing policy {path}: {exc.__class__.__name__}",
            field="sharing.yaml",
            expected="a YAML document (docs/security.md)",
        ) from None
    return parse_policy(obj, str(path))
