"""Check an image link against the content hash recorded when its report was stored.

A report's ImagingStudy or DocumentReference may carry ``urn:medledger:content-hash``
(``sha256:<hex>`` or ``sm3:<hex>``) beside the WADO-RS, viewer or report-image URL. Since the
resource version is anchored on the ledger, the hash is as trustworthy as the report: fetching
the URL later and hashing the bytes shows whether the image is still the one reported.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx

from medledger.crypto.registry import get_suite
from medledger.errors import EnvironmentFailure, InputError

__all__ = ["HASH_EXTENSION", "ImageCheck", "check_image", "links_of"]

HASH_EXTENSION = "urn:medledger:content-hash"
WADO_EXTENSION = "urn:medledger:wado-rs"
MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class ImageCheck:
    """The outcome for one link: ``matches`` is None when no hash was recorded."""

    url: str
    expected: str | None
    actual: str | None
    matches: bool | None


def links_of(resource: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(url, recorded hash) of every image link of an ImagingStudy or DocumentReference."""
    out: list[tuple[str, str | None]] = []
    if resource.get("resourceType") == "DocumentReference":
        for content in resource.get("content", []):
            att = content.get("attachment", {})
            if att.get("url"):
                out.append((str(att["url"]), _hash_of(att)))
    elif resource.get("resourceType") == "ImagingStudy":
        for ext in resource.get("extension", []):
            if ext.get("url") == WADO_EXTENSION and ext.get("valueUrl"):
                out.append((str(ext["valueUrl"]), _hash_of(resource)))
    else:
        raise InputError(
            "only ImagingStudy and DocumentReference carry image links",
            field="resourceType",
            value=resource.get("resourceType"),
            expected="ImagingStudy or DocumentReference",
        )
    return out


def check_image(url: str, expected: str | None, *, client: httpx.Client) -> ImageCheck:
    """Fetch ``url`` and compare its hash with ``expected`` (``algo:hex``)."""
    algo = (expected or "sha256:").split(":", 1)[0]
    if algo not in ("sha256", "sm3"):
        raise InputError(
            "unknown content-hash algorithm",
            field="content-hash",
            value=expected,
            expected="sha256:<hex> or sm3:<hex>",
        )
    try:
        with client.stream("GET", url) as response:
            response.raise_for_status()
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise InputError("the image is larger than 512 MiB", field="url", value=url)
    except httpx.HTTPError as exc:
        raise EnvironmentFailure(
            f"cannot fetch the image: {type(exc).__name__}", field="url", value=url
        ) from None
    if algo == "sm3":
        digest = get_suite("sm-v1").hash(bytes(body)).hex()
    else:
        digest = hashlib.sha256(body).hexdigest()
    actual = f"{algo}:{digest}"
    matches = None if expected is None else actual == expected.lower()
    return ImageCheck(url, expected, actual, matches)


def _hash_of(node: dict[str, Any]) -> str | None:
    for ext in node.get("extension", []):
        if ext.get("url") == HASH_EXTENSION and ext.get("valueString"):
            return str(ext["valueString"])
    return None
