"""GET /api/v1/interop/specimens/{barcode}/label.svg|png over a real server."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections import Counter

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from medledger.errors import NotFound
from medledger.interop.model import identifier_system
from medledger.interop.specimens import GROUP_BARCODE, find_specimen
from medledger.records.guard import SystemGuard
from tests.interop.barcode._code128 import decode_widths, widths_from_runs
from tests.interop.specimens._orders import CENTRAL, EAST, EAST_NAME
from tests.interop.specimens.conftest import Site

SVG = "{http://www.w3.org/2000/svg}"
URL = "/api/v1/interop/specimens"


def _pseudonym(site: Site, patient: str) -> str:
    system = identifier_system(EAST, "patient")
    found = site.service.search("Patient", [("identifier", f"{system}|{patient}")])
    return site.service.indexer.patient_pseudonym(f"Patient/{found.resources[0]['id']}")


def _svg(site: Site, who: str, barcode: str) -> ET.Element:
    with site.client(who) as client:
        response = client.get(f"{URL}/{barcode}/label.svg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["cache-control"] == "no-store"
    return ET.fromstring(response.content)  # noqa: S314 - our own server's output


def _bars(root: ET.Element) -> str:
    runs = [
        (float(r.get("x", "0")), float(r.get("width", "0")))
        for r in root.iter(f"{SVG}rect")
        if r.get("class") == "bar"
    ]
    return decode_widths(widths_from_runs(runs))


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_svg_label_decodes_to_the_barcode_and_shows_the_pseudonym(shared: Site) -> None:
    """The bars decode to the group barcode; the text is pseudonym, items, sender, time."""
    barcode = shared.barcodes["E0001"]
    root = _svg(shared, "dr-central", barcode)
    assert _bars(root) == barcode
    institution, value, pseudonym, items, collected = _texts(root)
    assert (institution, value, collected) == (EAST_NAME, barcode, "2026-11-23 08:30")
    full = _pseudonym(shared, "MZ0001")
    assert pseudonym.endswith("…")  # 64 hex digits do not fit a 50 mm label: a long prefix
    assert full.startswith(pseudonym[:-1])
    assert len(pseudonym) > 20
    assert items == "血细胞分析（五分类）、肝功能"  # the performer's name where translated


def test_label_never_shows_the_patient_name(shared: Site) -> None:
    """No label carries the patient's name or id, for either patient."""
    for key in ("E0001", "E0002", "CRP"):
        with shared.client("hub") as client:
            data = client.get(f"{URL}/{shared.barcodes[key]}/label.svg").content
        text = data.decode("utf-8")
        for secret in ("张三", "李四", "MZ0001", "MZ0002"):
            assert secret not in text


def test_sender_can_print_its_own_label(shared: Site) -> None:
    """The sending institution's clinician reads its own specimen's label."""
    barcode = shared.barcodes["M0001"]
    root = _svg(shared, "dr-member", barcode)
    assert _bars(root) == barcode
    assert _texts(root)[0] == "hosp-member"  # the directory's name of the sender


def test_png_label_decodes_to_the_barcode(shared: Site) -> None:
    """The PNG label is a 300 dpi image whose widest row of bars decodes to the barcode."""
    barcode = shared.barcodes["E0002"]
    with shared.client("dr-central") as client:
        response = client.get(f"{URL}/{barcode}/label.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content)).convert("L")
    assert round(image.info["dpi"][0]) == 300
    width, height = image.size
    pixels = image.tobytes()  # one byte per pixel, row after row
    rows: Counter[tuple[tuple[float, float], ...]] = Counter()
    for y in range(height):
        row = pixels[y * width : (y + 1) * width]
        runs, x = [], 0
        while x < width:
            if row[x] < 128:
                start = x
                while x < width and row[x] < 128:
                    x += 1
                runs.append((float(start), float(x - start)))
            x += 1
        if len(runs) >= 10:  # blank rows and short text rows are no candidates
            rows[tuple(runs)] += 1
    best = rows.most_common(1)[0][0]  # the bars: 34 modules of identical pixel rows
    assert decode_widths(widths_from_runs(best)) == barcode


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_unreadable_and_unknown_barcodes_are_the_same_404(shared: Site, fmt: str) -> None:
    """dr-other gets the same 404 for a real barcode it may not read as for an unknown one."""
    real, unknown = shared.barcodes["E0001"], "14261123999993"
    with shared.client("dr-other") as client:
        hidden = client.get(f"{URL}/{real}/label.{fmt}")
        missing = client.get(f"{URL}/{unknown}/label.{fmt}")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    assert hidden.json()["error"]["message"] == missing.json()["error"]["message"]
    assert hidden.json()["error"]["details"] == {
        "field": "barcode", "value": real,
        "expected": "the group barcode of a specimen you may read",
    }  # fmt: skip


def test_member_barcode_is_not_a_label_key(shared: Site) -> None:
    """Only the group barcode finds a label: the member's own barcode is a 404."""
    with shared.client("hub") as client:
        assert client.get(f"{URL}/E0001/label.svg").status_code == 404
        assert client.get(f"{URL}/{shared.barcodes['E0001']}/label.svg").status_code == 200


def test_find_specimen_returns_the_readable_specimen(shared: Site) -> None:
    """find_specimen gives the Specimen with that group barcode, its pseudonym as subject."""
    barcode = shared.barcodes["E0002"]
    loaded = find_specimen(shared.service, barcode, SystemGuard(CENTRAL))
    assert {"system": GROUP_BARCODE, "value": barcode} in loaded.resource["identifier"]
    assert loaded.version.subject == _pseudonym(shared, "MZ0002")
    assert loaded.version.inst == EAST


@settings(max_examples=50)
@given(st.text(max_size=45))
def test_find_specimen_refuses_anything_else_with_not_found(shared: Site, text: str) -> None:
    """Any other text, including search syntax such as , | \\ $, is a NotFound naming it."""
    assume(text not in shared.barcodes.values())
    with pytest.raises(NotFound) as caught:
        find_specimen(shared.service, text, SystemGuard(CENTRAL))
    assert (caught.value.field, caught.value.value) == ("barcode", text)
