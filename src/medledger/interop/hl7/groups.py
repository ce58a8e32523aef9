"""Group the segments of an order or result message into patient and ORC/OBR groups.

The rules, common to ORM^O01, OML^O21 and ORU^R01:

- a PID starts a patient; PV1 belongs to the patient before it;
- an ORC starts an order group; the OBR after it joins that group;
- an OBR when the current group already has an OBR (or there is none) starts a new group that
  shares the previous ORC: several HIS send one ORC for several OBRs;
- TQ1 belongs to the current group (the first one counts);
- NTEs after an OBR and before its first OBX or SPM are the group's notes; an NTE after an
  OBX belongs to that OBX; NTEs anywhere else are ignored;
- an OBX belongs to the current OBR (one after an SPM is a specimen observation: ignored);
- an SPM belongs to the OBR group it follows (OML^O21);
- other segments (PD1, PV2, IN1, DG1, AL1, Z-segments …) are ignored.

An OBX or SPM before any OBR is a segment sequence error (AE, 100).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medledger.interop.hl7.segments import Seg

__all__ = ["Group", "Observed", "group_segments"]


@dataclass
class Observed:
    """One OBX and the NTEs that follow it."""

    obx: Seg
    notes: list[Seg] = field(default_factory=list)


@dataclass
class Group:
    """One order group: its patient, ORC, OBR, notes, observations and specimens."""

    pid: Seg | None
    pv1: Seg | None
    orc: Seg | None
    obr: Seg | None = None
    tq1: Seg | None = None
    notes: list[Seg] = field(default_factory=list)
    observations: list[Observed] = field(default_factory=list)
    specimens: list[Seg] = field(default_factory=list)

    def require_obr(self) -> Seg:
        """Return the group's OBR; reject (AE 100 naming the ORC) an ORC without one."""
        if self.obr is None:
            assert self.orc is not None  # a group starts with an ORC or an OBR
            raise self.orc.fail(
                None, "an ORC must be followed by its OBR", code="100", expected="ORC then OBR"
            )
        return self.obr

    def number(self, n: int) -> str | None:
        """Return an order number: OBR-``n``.1, else ORC-``n``.1 (2 placer, 3 filler)."""
        found = self.obr.comp(n) if self.obr is not None else None
        return found or (self.orc.comp(n) if self.orc is not None else None)


def group_segments(segments: tuple[Seg, ...] | list[Seg]) -> list[Group]:
    """Return the order groups of a message (its segments after MSH)."""
    pid: Seg | None = None
    pv1: Seg | None = None
    cur: Group | None = None
    groups: list[Group] = []
    for seg in segments[1:]:
        name = seg.name
        if name == "PID":
            pid, pv1, cur = seg, None, None
        elif name == "PV1":
            pv1 = seg
        elif name == "ORC":
            cur = Group(pid, pv1, seg)
            groups.append(cur)
        elif name == "OBR":
            if cur is None or cur.obr is not None:
                cur = Group(pid, pv1, cur.orc if cur is not None else None)
                groups.append(cur)
            cur.obr = seg
        elif name == "TQ1" and cur is not None and cur.tq1 is None:
            cur.tq1 = seg
        elif name == "NTE" and cur is not None and cur.obr is not None and not cur.specimens:
            if cur.observations:
                cur.observations[-1].notes.append(seg)
            else:
                cur.notes.append(seg)
        elif name in ("OBX", "SPM"):
            if cur is None or cur.obr is None:
                raise seg.fail(
                    None,
                    f"{name} must follow an OBR",
                    code="100",
                    expected=f"ORC/OBR before {name}",
                )
            if name == "SPM":
                cur.specimens.append(seg)
            elif not cur.specimens:
                cur.observations.append(Observed(seg))
    return groups
