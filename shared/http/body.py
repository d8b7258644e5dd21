"""Reading request bodies without ever holding more than the limit in memory."""

from __future__ import annotations

from fastapi import Request

from shared.errors import BadRequest, PayloadTooLarge


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError as exc:
            raise BadRequest("content-length is not a number", code="bad_content_length") from exc
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body exceeds the {limit}-byte limit", code="payload_too_large")
