"""Structured logs: one JSON object per line on stderr, and never an IP address.

Footfall's own log calls pass only event names, apps, counts and error types.
Uvicorn's access log, which would hold addresses, is off (see serving.py).
"""

from __future__ import annotations

import json
import logging
import time

STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in STANDARD and not k.startswith("_")})
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("footfall")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
