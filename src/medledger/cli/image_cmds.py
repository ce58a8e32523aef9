"""``medledger interop check-image``: fetch a report's images and compare their hashes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medledger.cli.output import handle_errors, out_console
from medledger.errors import InputError

DEFAULT_DATA = Path("medledger-data")


def register(app: typer.Typer) -> None:
    """Add ``check-image`` to the ``interop`` group."""
    app.command("check-image")(check_image_cmd)


@handle_errors
def check_image_cmd(
    ref: Annotated[str, typer.Argument(help="ImagingStudy/<id> or DocumentReference/<id>.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Ledger data directory.")] = (
        DEFAULT_DATA
    ),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each image.")] = 30.0,
) -> None:
    """Fetch every image link of a stored ImagingStudy or DocumentReference and compare its
    hash with the content hash recorded (and anchored) with the report.

    Exits 0 when every image matches, 1 when one differs, 2 when no hash was recorded."""
    import httpx

    from medledger.interop.images import check_image, links_of
    from medledger.ledger.node import LedgerNode
    from medledger.records.service import RecordService

    rtype, _, rid = ref.partition("/")
    if rtype not in ("ImagingStudy", "DocumentReference") or not rid:
        raise InputError(
            "name a stored image resource",
            field="ref",
            value=ref,
            expected="ImagingStudy/<id> or DocumentReference/<id>",
        )
    with LedgerNode.open(data) as node:
        resource = RecordService.open(node, recover=False).read(rtype, rid.split("/")[0]).resource
    links = links_of(resource or {})
    if not links or any(expected is None for _, expected in links):
        raise InputError(
            f"{ref} has an image link without a recorded content hash",
            field="urn:medledger:content-hash",
            value=ref,
            expected="a report sent with a content hash (NTE-4 content-hash, or the extension)",
        )
    bad = 0
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for url, expected in links:
            found = check_image(url, expected, client=client)
            bad += found.matches is False
            verdict = "matches" if found.matches else f"DIFFERS (now {found.actual})"
            out_console.print(f"{url}: {verdict}", markup=False)
    if bad:
        raise typer.Exit(1)
