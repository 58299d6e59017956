"""Request bodies before any protocol sees them: size caps and gzip, bounded.

A gzip bomb fails cheaply: decompression stops at the cap instead of inflating
the whole body first.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from footfall.server.errors import BadRequest, PayloadTooLarge


def decompress(body: bytes, content_encoding: str, max_bytes: int) -> bytes:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise BadRequest(
            f"Content-Encoding {content_encoding!r} is not supported; use gzip or none",
            code="unsupported_encoding",
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid gzip: {exc}", code="invalid_gzip") from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the decompressed body is larger than {max_bytes} bytes")
    if not inflater.eof:
        raise BadRequest("the gzip body is truncated", code="invalid_gzip")
    return data


def parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
