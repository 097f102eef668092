"""A request body on the wire: the sizes its headers declare, and its reading within the server's limit."""

from __future__ import annotations

from starlette.requests import Request

from .protocol import BINARY_HEADER, BadRequest


def byte_count(value: str) -> int | None:
    """A header's count of bytes: ASCII digits only, else None. (str.isdigit takes "²" and other digits
    that int() refuses.)"""
    if not (value.isascii() and value.isdigit()):
        return None
    # More digits than any body has: a count beyond every limit, without int() on all of them.
    return int(value) if len(value) <= 18 else 10**18


def header_length(request: Request) -> int | None:
    """The JSON header's length when the request uses the binary data extension, else None."""
    value = request.headers.get(BINARY_HEADER)
    if value is None:
        return None
    length = byte_count(value)
    if length is None:
        raise BadRequest(f"header {BINARY_HEADER} must be the JSON header's length in bytes (0-9), not {value!r}")
    return length


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes, declared or chunked.

    Reading stops there, so a body of any size costs at most `limit` bytes of memory.
    """
    declared = request.headers.get("content-length")
    size = byte_count(declared) if declared is not None else None
    if size is not None and size > limit:
        raise BadRequest(f"the body of {declared} bytes is over the limit of {limit}: split the batch", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the body is over the limit of {limit} bytes: split the batch", 413)
        chunks.append(chunk)
    return b"".join(chunks)
