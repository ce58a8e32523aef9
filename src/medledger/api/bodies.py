"""Read a request body safely: content type checked, size limited before and while reading."""

from __future__ import annotations

from fastapi import Request

from medledger.errors import InputError


async def read_body(request: Request, max_body: int, accepted: tuple[str, ...]) -> bytes:
    """Return the body; 415 unless its type is in ``accepted``, 413 past ``max_body`` bytes.

    A declared length is refused before anything is read, and a body without one (chunked)
    is read only up to the limit, never buffered whole.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in accepted:
        err = InputError(
            f"content type {ctype or '(none)'} is not accepted",
            field="Content-Type",
            value=ctype,
            expected=" or ".join(accepted),
        )
        err.http_status = 415
        raise err
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise _too_large(int(declared), max_body)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise _too_large(size, max_body)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, max_body: int) -> InputError:
    err = InputError(
        f"body of {size} bytes exceeds the limit of {max_body}",
        field="body",
        value=size,
        expected=f"at most {max_body} bytes",
    )
    err.http_status = 413
    return err
