"""Request bodies before any protocol sees them: size caps and gzip, bounded; and
the one rule for text that may be stored.

A gzip bomb fails cheaply: decompression stops at the cap instead of inflating
the whole body first.
"""

from __future__ import annotations

import json
import re
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


# Control characters (C0, DEL, C1), lone surrogates (valid JSON escapes, but not Unicode text:
# no database can store them) and the bidirectional overrides that make text display other
# than it reads. One character class: linear in the length, whatever the input.
_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def storable(text: str) -> bool:
    """True when `text` is clean Unicode that every store and every page can hold as it is.

    The one rule for text: the native and GA4 protocols validate with it, and the pipeline
    holds every protocol's stored strings to it. Keep no second copy of it elsewhere."""
    return _UNSTORABLE.search(text) is None
