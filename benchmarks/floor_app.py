"""The Python floor the collector is measured against (issue 9): a minimal ASGI app that does the
least any Python collector must do, and answers.

- `POST /v1/batch`: read the body, gunzip it when it says gzip, `json.loads` it, answer 204.
- `POST /collect`: read the body, parse the form (`urllib.parse.parse_qsl`), answer 200.
- anything else (the benchmark's wait for start-up): 204.

benchmarks/bench_collector.py runs it on the same Uvicorn settings and worker count as
`footfall serve`.
"""

from __future__ import annotations

import gzip
import json
import urllib.parse
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    status = 204
    if scope["method"] == "POST" and scope["path"] == "/collect":
        urllib.parse.parse_qsl(body.decode("utf-8", "replace"))
        status = 200
    elif scope["method"] == "POST":
        if (b"content-encoding", b"gzip") in scope["headers"]:
            body = gzip.decompress(body)
        json.loads(body)
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})
