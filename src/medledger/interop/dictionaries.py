"""Item dictionaries and their mappings stored on a node, read and written through a guard.

An institution's dictionary (基础字典) is one CodeSystem record with the fixed id
:func:`dictionary_id`; the mapping (项目字典对照) from one dictionary to another is one
ConceptMap record with the fixed id :func:`mapping_id`. Fixed ids make a second import a new
version of the same record, whose owner the records layer protects. A dictionary belongs to its
institution and a mapping to its *source* institution, whoever imports it: the guard of a write
is asked as if the record already belonged to that institution.

:meth:`DictionaryService.translator` (the gateway's, over every ConceptMap) is cached until a
ConceptMap version is written; :meth:`DictionaryService.translate` answers
``ConceptMap/$translate`` over the ConceptMaps one caller may read.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from medledger.errors import Gone, InputError, NotFound
from medledger.interop.model import Coded, code_system
from medledger.interop.terminology import (
    DictItem,
    Mapping,
    Suggestion,
    Translator,
    concept_map,
    dictionary_codesystem,
    items_of,
    pairs_of,
    suggest,
)
from medledger.interop.terminology.codesystem import check_institution
from medledger.interop.trusted_maps import usable
from medledger.records.guard import WRITE, Guard
from medledger.records.service import RecordService
from medledger.records.versions import Loaded, Version
from medledger.records.visibility import Facts, Visibility

__all__ = [
    "DictionaryService",
    "Stored",
    "TranslateQuery",
    "dictionary_id",
    "mapping_id",
]


CODESYSTEM, CONCEPTMAP = "CodeSystem", "ConceptMap"
_PAGE = "1000"  # the records layer's largest search page
_KEPT = ("name", "title", "publisher", "version")  # kept from the stored version on re-import


def dictionary_id(institution: str) -> str:
    """The record id of an institution's dictionary, e.g. ``dict-hosp-central``."""
    check_institution(institution)
    if len(institution) <= 58:
        return f"dict-{institution}"  # at most 63 characters: never equal to a hashed id
    return "dict-" + hashlib.sha256(institution.encode()).hexdigest()[:59]


def mapping_id(source: str, target: str) -> str:
    """The record id of the mapping ``source`` → ``target``, e.g. ``map-hosp-a.hosp-b`` (a
    hashed id, without a dot, when an institution id holds a dot or the id would be long)."""
    check_institution(source, "source")
    check_institution(target, "target")
    readable = f"map-{source}.{target}"
    if "." not in source + target and len(readable) <= 64:
        return readable
    return "map-" + hashlib.sha256(f"{source}\n{target}".encode()).hexdigest()[:60]


@dataclass(frozen=True, slots=True)
class Stored:
    """What a save stored: record, item (or pair) count, version, ledger entry; ``changed``
    is False when it held exactly what was stored already (then no version was written)."""

    resource_type: str
    id: str
    url: str
    items: int
    version: int
    ledger_index: int | None
    created: bool
    changed: bool

    def summary(self) -> dict[str, Any]:
        """The JSON answer of an import (HTTP and CLI ``--json``)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TranslateQuery:
    """One ``ConceptMap/$translate`` request: ``codings`` (one, or a codeableConcept's) and
    either an inline ``conceptmap`` or the stored maps, narrowed by ``url`` and by ``target``
    (the url of a map's ``targetUri``/``targetCanonical`` or of a group's target system)."""

    codings: tuple[Coded, ...]
    url: str | None = None
    conceptmap: dict[str, Any] | None = None
    target: str | None = None
    target_system: str | None = None
    reverse: bool = False


class _OwnedBy:
    """A guard whose new records belong to ``owner``; ``inner`` decides as if they already did."""

    def __init__(self, inner: Guard, owner: str, subject: str) -> None:
        """Wrap ``inner`` for records of ``owner`` (``subject``: their pseudonym)."""
        self.inner = inner
        self.owner = owner
        self.subject = subject

    @property
    def institution(self) -> str:
        """The institution that owns what this request creates: the record's owner."""
        return self.owner

    def visibility(self, action: str, rtype: str) -> Visibility:
        """Ask the wrapped guard."""
        return self.inner.visibility(action, rtype)

    def check(self, action: str, rtype: str, rid: str | None, facts: Facts | None) -> None:
        """Ask the wrapped guard; a record not yet written is presented as the owner's."""
        if facts is None and action == WRITE:
            facts = Facts(self.owner, self.subject, frozenset(), frozenset())
        self.inner.check(action, rtype, rid, facts)

    def touched(self, ref: str, subject: str, owner: str | None = None) -> None:
        """Tell the wrapped guard (its audit event lists what the request wrote)."""
        self.inner.touched(ref, subject, owner)


class DictionaryService:
    """Dictionaries and mappings of one node, through a ``guard`` (None: the node itself, as
    the CLI acts). ``listen`` registers :meth:`on_written` so that the translator stays current."""

    def __init__(self, service: RecordService, *, listen: bool = True) -> None:
        """Serve the dictionaries stored by ``service``."""
        self.service = service
        self._lock = threading.Lock()
        self._translator: Translator | None = None
        self._generation = 0
        if listen:
            service.listeners.append(self.on_written)

    def on_written(self, versions: Sequence[Version]) -> None:
        """Drop the cached translator when a ConceptMap version was written (a listener)."""
        if any(v.rtype == CONCEPTMAP for v in versions):
            with self._lock:
                self._translator = None
                self._generation += 1

    def translator(self) -> Translator:
        """A translator over every readable ConceptMap of the node, cached until one changes."""
        with self._lock:
            cached, generation = self._translator, self._generation
        if cached is not None:
            return cached
        built = Translator(usable(self.service, self._all_maps(None)))
        with self._lock:
            if self._generation == generation:  # no map was written while this one was built
                self._translator = built
        return built

    def _all_maps(self, guard: Guard | None) -> list[dict[str, Any]]:
        """Every current ConceptMap the guard may search, all pages."""
        maps: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params = [("_count", _PAGE)] + ([("_page_token", token)] if token else [])
            page = self.service.search(CONCEPTMAP, params, guard=guard)
            maps += page.resources
            token = page.next_token
            if token is None:
                return maps

    def translate(self, query: TranslateQuery, *, guard: Guard | None = None) -> dict[str, Any]:
        """Answer ``ConceptMap/$translate`` (R4 Parameters) over the ConceptMaps the guard may
        search; an unknown ``url`` is NotFound."""
        if not query.codings:
            raise InputError("code: nothing to translate", field="code", expected="a code")
        if query.conceptmap is not None:
            translator = _translator_of([query.conceptmap], "conceptMap")
        else:
            maps = usable(self.service, self._all_maps(guard))
            if query.url is not None:
                maps = [m for m in maps if m.get("url") == query.url]
                if not maps:
                    raise NotFound(
                        f"url: no ConceptMap {query.url!r} is known here",
                        field="url",
                        value=query.url,
                        expected="the url of a ConceptMap you may read",
                    )
            if query.target is not None:
                maps = [m for m in maps if query.target in _targets(m)]
            translator = Translator(maps)
        answers = [
            translator.parameters(c.system, c.code, query.target_system, reverse=query.reverse)
            for c in query.codings
        ]
        return _merged(answers)

    def load_dictionary(self, institution: str, *, guard: Guard | None = None) -> dict[str, Any]:
        """The stored CodeSystem of ``institution``'s dictionary; NotFound if none was imported."""
        return self._load(CODESYSTEM, dictionary_id(institution), institution, guard)

    def dictionary_items(self, institution: str, *, guard: Guard | None = None) -> list[DictItem]:
        """The items of ``institution``'s stored dictionary."""
        return items_of(self.load_dictionary(institution, guard=guard))

    def save_dictionary(
        self, institution: str, items: Iterable[DictItem], *, guard: Guard | None = None
    ) -> Stored:
        """Store ``items`` as ``institution``'s dictionary: created, or a new version."""
        listed = list(items)
        rid = dictionary_id(institution)
        build = partial(dictionary_codesystem, institution, listed)
        return self._store(CODESYSTEM, rid, build, len(listed), institution, guard)

    def load_mapping(
        self, source: str, target: str, *, guard: Guard | None = None
    ) -> dict[str, Any]:
        """The stored ConceptMap ``source`` → ``target``; NotFound if none was imported."""
        return self._load(CONCEPTMAP, mapping_id(source, target), f"{source} → {target}", guard)

    def mapping_pairs(
        self, source: str, target: str, *, guard: Guard | None = None
    ) -> list[Mapping]:
        """The pairs of the stored mapping ``source`` → ``target``."""
        return pairs_of(self.load_mapping(source, target, guard=guard))

    def save_mapping(
        self, source: str, target: str, pairs: Iterable[Mapping], *, guard: Guard | None = None
    ) -> Stored:
        """Store ``pairs`` as the mapping ``source`` → ``target`` (owned by ``source``); codes
        are checked against each side's stored dictionary, where one was imported."""
        rid = mapping_id(source, target)
        listed = list(pairs)
        self._check_codes(source, [p.source_code for p in listed], "source_code", guard)
        targets = [p.target_code for p in listed if p.target_code is not None]
        self._check_codes(target, targets, "target_code", guard)
        build = partial(concept_map, source, target, listed)
        return self._store(CONCEPTMAP, rid, build, len(listed), source, guard)

    def suggestions(
        self,
        source: str,
        target: str,
        *,
        limit: int = 3,
        cutoff: float = 60.0,
        guard: Guard | None = None,
    ) -> list[Suggestion]:
        """Suggest targets for each source item the stored mapping (if any) does not cover;
        both dictionaries must be stored."""
        source_items = self.dictionary_items(source, guard=guard)
        target_items = self.dictionary_items(target, guard=guard)
        try:
            mapped = {p.source_code for p in self.mapping_pairs(source, target, guard=guard)}
        except NotFound:
            mapped = set()
        return suggest(source_items, target_items, limit=limit, cutoff=cutoff, mapped=mapped)

    def _current(self, rtype: str, rid: str, guard: Guard | None) -> Loaded | None:
        """The current version of ``rtype/rid`` (None if absent or deleted), read with the guard."""
        if self.service.store.facts(rtype, rid) is None:
            return None
        try:
            return self.service.read(rtype, rid, guard=guard)
        except (NotFound, Gone):
            return None

    def _load(self, rtype: str, rid: str, what: str, guard: Guard | None) -> dict[str, Any]:
        """Read ``rtype/rid`` with the guard; NotFound naming what was asked for otherwise."""
        found = self._current(rtype, rid, guard)
        if found is None:
            noun = "dictionary" if rtype == CODESYSTEM else "mapping"
            raise NotFound(
                f"no {noun} of {what} has been imported ({rtype}/{rid})",
                field="institution" if rtype == CODESYSTEM else "mapping",
                value=what,
                expected=f"an imported {noun}",
            )
        return found.resource

    def _store(
        self,
        rtype: str,
        rid: str,
        build: Callable[..., dict[str, Any]],
        count: int,
        owner: str,
        guard: Guard | None,
    ) -> Stored:
        """Write what ``build`` makes as a new version of ``rtype/rid``, unless nothing changed.

        The stored version's name, title, publisher and version are kept (unless ``build``
        refuses them: written through the FHIR API).
        """
        current = self._current(rtype, rid, guard)
        stored = current.resource if current is not None else {}
        kept = {k: stored[k] for k in _KEPT if isinstance(stored.get(k), str)}
        try:
            body = build(**kept)
        except InputError:
            body = build()
        url = str(body["url"])
        if current is not None and _content(current.resource) == _content(body):
            v = current.version
            return Stored(rtype, rid, url, count, v.vid, v.ledger_index, False, False)
        subject = self.service.indexer.subject_of(rtype, rid, body)
        wrapped = _OwnedBy(guard or self.service.system, owner, subject)
        saved = self.service.update(rtype, rid, body, guard=wrapped)
        v = saved.version
        return Stored(rtype, rid, url, count, v.vid, saved.ledger_index, current is None, True)

    def _check_codes(self, inst: str, codes: list[str], field: str, guard: Guard | None) -> None:
        """Refuse codes missing from ``inst``'s stored dictionary (if it has one)."""
        stored = self._current(CODESYSTEM, dictionary_id(inst), guard)
        if stored is None:
            return
        known = {item.code for item in items_of(stored.resource)}
        missing = list(dict.fromkeys(c for c in codes if c not in known))
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputError(
                f"{field}: code {missing[0]!r} is not in the dictionary of {inst}{more}",
                field=field,
                value=missing[0],
                expected=f"a code of {code_system(inst)}",
                missing=missing[:20],
            )


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource without what the store adds (id, meta, narrative)."""
    return {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}


def _translator_of(maps: list[dict[str, Any]], field: str) -> Translator:
    """A translator over ``maps``; errors name the parameter the maps came from."""
    try:
        return Translator(maps)
    except InputError as exc:
        where = f"{field}.{exc.field}" if exc.field else field
        said = exc.message.split(": ", 1)[-1]  # drop the Translator's "conceptmaps[0]: "
        raise InputError(
            f"{field}: {said}", field=where, value=exc.value, expected=exc.expected
        ) from None


def _targets(cm: dict[str, Any]) -> set[str]:
    """The urls a ``target`` parameter may name to select ``cm``."""
    found = {cm.get("targetUri"), cm.get("targetCanonical")}
    groups = cm.get("group")
    if isinstance(groups, list):
        found |= {g.get("target") for g in groups if isinstance(g, dict)}
    return {u for u in found if isinstance(u, str)}


def _merged(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One Parameters answer for several codings: true if any translated, every match once."""
    if len(answers) == 1:
        return answers[0]
    params = [p for a in answers for p in a["parameter"]]
    result = any(p.get("valueBoolean") for p in params if p["name"] == "result")
    head: list[dict[str, Any]] = [{"name": "result", "valueBoolean": result}]
    if not result:
        said = "; ".join(p["valueString"] for p in params if p["name"] == "message")
        head.append({"name": "message", "valueString": said})
    matches = [p for i, p in enumerate(params) if p["name"] == "match" and p not in params[:i]]
    return {"resourceType": "Parameters", "parameter": head + matches}
