"""Footfall SDK: anonymous, aggregate usage analytics for open-source tools.

    import footfall
    analytics = footfall.init(app="mytool", endpoint="https://footfall.example.org",
                              app_version="1.2.3")
    analytics.track("command", command="build")

This package uses the Python standard library only and never raises into the host.
"""

from __future__ import annotations

from footfall.client import Client, NullClient, init
from footfall.consent import Decision, child_env
from footfall.schema import (
    Bool,
    CommandPath,
    Enum,
    Identifier,
    Integer,
    OptionNames,
    PropType,
    Schema,
    Version,
)
from footfall.transport import (
    DebugTransport,
    HttpTransport,
    MemoryTransport,
    SendResult,
    Transport,
)

__version__ = "0.1.0"

__all__ = [
    "Bool",
    "Client",
    "CommandPath",
    "DebugTransport",
    "Decision",
    "Enum",
    "HttpTransport",
    "Identifier",
    "Integer",
    "MemoryTransport",
    "NullClient",
    "OptionNames",
    "PropType",
    "Schema",
    "SendResult",
    "Transport",
    "Version",
    "__version__",
    "child_env",
    "init",
]
