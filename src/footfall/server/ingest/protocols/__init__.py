"""Wire protocols: each module decodes one format into `Incoming` events.

`Incoming` is what every protocol hands the ingest pipeline: one event, already
tied to a registered app, with the raw ids still in it. The pipeline hashes the
ids, applies the app's schema and the safety net, and stores an `EventRecord`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any


@dataclasses.dataclass
class Incoming:
    app: str
    name: str
    time: dt.datetime  # naive UTC
    install: str  # raw id, "" when none; hashed before storage
    session: str  # raw run id, "" when none; hashed before storage
    app_version: str
    platform: dict[str, str]
    environment: dict[str, str]
    props: dict[str, Any]
    source: str  # "native", "ga-v1" or "ga4"
    country: str = ""
