"""A Subscription never notifies about a resource its owner may not read.

The oracle is written by hand from ``access/sharing.py`` DEFAULT_POLICY and
``records/parties.py``: 示例区中医院 (M) may read a report of 示例市第一人民医院 when the report
names M as performer, or is based on an order M placed (an order's owner is its requester),
or when the patient's active Consent at the central hospital names M.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.access.consent import ConsentIndex
from medledger.access.sharing import DEFAULT_POLICY
from medledger.errors import PermissionDenied
from medledger.interop.subscription_match import notification_key, owner_guard
from medledger.records.guard import SystemGuard
from tests.interop.subscriptions.conftest import (
    CENTRAL,
    MEMBER,
    WEST,
    World,
    order,
    report,
    subscribe,
)

URL = "https://his.member-east.example/fhir-hook"
NOTIFIED = frozenset({"final", "corrected", "amended", "entered-in-error"})
STATUSES = ("registered", "partial", "preliminary", "final", "amended", "corrected",
            "appended", "cancelled", "entered-in-error", "unknown")  # fmt: skip


def _member_may_read(w: World, ref: str) -> bool:
    rtype, rid, _, vid = ref.split("/")
    guard = owner_guard(MEMBER, DEFAULT_POLICY, ConsentIndex(w.service))
    try:
        w.service.read(rtype, rid, int(vid), guard=guard)
    except PermissionDenied:
        return False
    return True


def test_notifications_follow_the_sharing_policy(world: World) -> None:
    """For random reports (order placed by M, by another member, by the central hospital, or
    none; performer M or not; any status) exactly the ones M may read with a notified status
    are queued, and the access layer agrees with the hand-written oracle."""
    sid = subscribe(world, URL)
    world.hub.catch_up()
    orders = {inst: order(world, inst) for inst in (MEMBER, WEST, CENTRAL)}

    @settings(max_examples=15)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from([MEMBER, WEST, CENTRAL, None]),
                st.sampled_from([None, MEMBER, WEST]),
                st.sampled_from(STATUSES),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def check(reports: list[tuple[str | None, str | None, str]]) -> None:
        written = []
        for placer, performer, status in reports:
            ref = report(world, orders.get(placer or ""), status, performer=performer)
            visible = MEMBER in (placer, performer)
            written.append((ref, visible, status in NOTIFIED))
        world.hub.catch_up()
        for ref, visible, notified in written:
            assert _member_may_read(world, ref) == visible, ref
            queued = world.queue.get(notification_key(sid, ref)) is not None
            assert queued == (visible and notified), (ref, visible, notified)

    check()


def test_a_consent_lets_the_subscription_see_that_patients_reports(world: World) -> None:
    """A report on no order is not notified, until the patient's active Consent at the central
    hospital names M; then M's Subscription is told about that patient's next report."""
    sid = subscribe(world, URL)
    world.hub.catch_up()
    before = report(world, None)
    world.hub.catch_up()
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}],
                      "text": "数据共享知情同意"}],
        "patient": {"reference": "Patient/mzh-0001"},
        "provision": {"type": "permit",
                      "actor": [{"role": {"text": "information recipient"},
                                 "reference": {"reference": f"Organization/{MEMBER}"}}]},
    }  # fmt: skip
    world.service.create("Consent", consent, guard=SystemGuard(CENTRAL))
    after = report(world, None)
    world.hub.catch_up()
    assert world.queue.get(notification_key(sid, before)) is None
    assert world.queue.get(notification_key(sid, after)) is not None
    assert _member_may_read(world, after)


def test_another_institutions_subscription_sees_only_its_own_share(world: World) -> None:
    """The same criteria owned by another member hospital is told only about its own orders'
    reports; each notification goes to its own owner."""
    mine = subscribe(world, URL)
    theirs = subscribe(world, "https://his.member-west.example/hook", owner=WEST)
    world.hub.catch_up()
    for_m, for_w = report(world, order(world, MEMBER)), report(world, order(world, WEST))
    world.hub.catch_up()
    assert world.queue.get(notification_key(theirs, for_m)) is None
    assert world.queue.get(notification_key(mine, for_w)) is None
    row_m = world.queue.get(notification_key(mine, for_m))
    row_w = world.queue.get(notification_key(theirs, for_w))
    assert row_m is not None
    assert row_w is not None
    assert (row_m.institution, row_w.institution) == (MEMBER, WEST)
